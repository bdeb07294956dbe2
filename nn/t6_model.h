// The T6 model: token embedding → n_layer pre-norm blocks (attention, SwiGLU MLP) → final rms_norm →
// logits through the tied embedding → cross-entropy. The forward pass reads top to bottom in
// nn/t6_model.cpp.
#pragma once
#include "nn/attention.h"
#include "nn/embedding.h"
#include "nn/kv_cache.h"
#include "nn/mlp.h"
#include "nn/model_config.h"

namespace t6 {

struct DecodeWeights;  // nn/fused_decode.h

class Block : public Module {
 public:
  Block(const ModelConfig& c, const ParameterInit& init);
  Tensor forward(const Tensor& x, const Tensor& positions) const;  // (B,T,d) → (B,T,d)
  // The same with the layer's KV cache (Attention::prefill and Attention::decode).
  Tensor prefill(const Tensor& x, const Tensor& positions, LayerKVCache& cache) const;
  Tensor decode(const Tensor& x, const DecodeSlots& step, LayerKVCache& cache) const;

  const double norm_eps;
  Attention& attn;
  MLP& mlp;

 private:
  Tensor add_mlp(const Tensor& h) const;  // h + MLP(rmsnorm(h))
  // rmsnorm(x) for the attention's or the MLP's input projections, which are its only readers: in the
  // dtype they multiply in (bfloat16 under mixed precision), so that no cast runs between.
  Tensor norm(const Tensor& x) const;
};

// Named "transformer" in the state dict: wte and the blocks h.0 … h.{L−1}.
class Transformer : public Module {
 public:
  Transformer(const ModelConfig& c, const ParameterInit& init);
  Embedding& wte;
  ModuleList& h;
  Block& block(size_t i) const { return static_cast<Block&>(h[i]); }
};

class T6Model : public Module {
 public:
  // Builds and initialises the model per spec from config.init_seed.
  explicit T6Model(const ModelConfig& config);
  // The model's names and shapes and nothing else (no parameter is allocated): for parameter_layout()
  // and parameter_count() of a model of any size. Anything that reads a value throws.
  static T6Model shapes_only(const ModelConfig& config);

  struct Output {
    Tensor logits;  // (B,T,V)
    Tensor loss;    // 0-d mean cross-entropy over targets ≠ −1; undefined without targets
  };
  // idx: int32 token ids (B,T), T ≤ block_size; targets: int32 (B,T) or undefined. Inputs may live on
  // any device; they are moved to the model's.
  Output forward(const Tensor& idx, const Tensor& targets = Tensor()) const;
  // forward(idx, targets).loss without the logits: the head and the loss in one fused op
  // (linear_cross_entropy), which never holds the (B,T,V) logits whole. What training and evaluation use.
  Tensor loss(const Tensor& idx, const Tensor& targets) const;

  // Generation with a KV cache (nn/kv_cache.h; nn/generate.h drives these). Neither records gradients.
  // prefill: idx int32 (B,T) holds each row's prompt from position 0, right-padded to T with any valid
  // id; row b's prompt is its first lengths[b] tokens. Stores every layer's cache entries of slots
  // [0, T) and sets the cache's lengths to `lengths` (a row's padding entries are overwritten by its
  // next tokens, and never attended to before). Returns each row's next-token logits (B,V), read at
  // position lengths[b] − 1.
  Tensor prefill(const Tensor& idx, const std::vector<int64_t>& lengths, KVCache& cache) const;
  // decode_step: tokens int32 (B), row b's next token, stored at slot cache.next_slots()[b], which is
  // also its position. Returns the next-token logits (B,V) and advances the cache by one token. With
  // `fused` weights (a tpa or tpa_kvonly model) it runs the fused decode step over them
  // (nn/fused_decode.h), else the modules' own decode.
  Tensor decode_step(const Tensor& tokens, KVCache& cache, const DecodeWeights* fused = nullptr) const;
  // The work of decode_step on inputs already on the model's device (tokens int32 (B) and the step's
  // slots), without advancing the cache: it queues kernels only, with no host copy or wait, so a CUDA
  // graph can capture it (nn/decode_graph.h).
  Tensor decode_on_device(const Tensor& device_tokens, const DecodeSlots& step, KVCache& cache,
                          const DecodeWeights* fused = nullptr) const;

  Device device() const { return transformer.wte.weight.device(); }
  // Positions 0…T−1 for every row, as the int32 (B,T) tensor RoPE reads.
  Tensor positions(int64_t B, int64_t T) const;

  const ModelConfig config;
  Transformer& transformer;

 private:
  T6Model(const ModelConfig& config, Generator&& gen);
  T6Model(const ModelConfig& config, const ParameterInit& init);
  Tensor trunk(const Tensor& idx) const;  // embeddings and blocks: (B,T) ids → (B,T,d)
  void check_targets(const Tensor& idx, const Tensor& targets) const;
  Tensor head(const Tensor& x) const;  // final rms_norm, then the tied output head: (…,d) → (…,V)
  void check_cache(const KVCache& cache) const;
};

}  // namespace t6
