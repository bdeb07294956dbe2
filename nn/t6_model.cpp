// The T6 forward pass (spec "Forward pass"), top to bottom.
#include "nn/t6_model.h"

#include "autograd/mixed_precision.h"
#include "autograd/node.h"
#include "nn/attention_factory.h"
#include "nn/fused_decode.h"

namespace t6 {

Block::Block(const ModelConfig& c, const ParameterInit& init)
    : norm_eps(c.norm_eps),
      attn(register_module("attn", make_attention(c, init))),
      mlp(register_module("mlp", std::make_unique<MLP>(c, init))) {}

Tensor Block::norm(const Tensor& x) const { return rms_norm(x, norm_eps, product_input_dtype(x)); }

Tensor Block::add_mlp(const Tensor& h) const {
  return add(h, mlp.forward(norm(h)));  // x + MLP(rmsnorm(x))
}

Tensor Block::forward(const Tensor& x, const Tensor& positions) const {
  return add_mlp(add(x, attn.forward(norm(x), positions)));  // x + Attn(rmsnorm(x)), then the MLP
}

Tensor Block::prefill(const Tensor& x, const Tensor& positions, LayerKVCache& cache) const {
  return add_mlp(add(x, attn.prefill(norm(x), positions, cache)));
}

Tensor Block::decode(const Tensor& x, const DecodeSlots& step, LayerKVCache& cache) const {
  return add_mlp(add(x, attn.decode(norm(x), step, cache)));
}

Transformer::Transformer(const ModelConfig& c, const ParameterInit& init)
    : wte(register_module("wte", std::make_unique<Embedding>(c.vocab_size, c.n_embd, init))),
      h(register_module("h", std::make_unique<ModuleList>())) {
  for (int64_t i = 0; i < c.n_layer; ++i) h.append(std::make_unique<Block>(c, init));
}

T6Model::T6Model(const ModelConfig& c) : T6Model(c, Generator(c.init_seed)) {}

T6Model T6Model::shapes_only(const ModelConfig& c) { return T6Model(c, ParameterInit::shapes_only()); }

// One generator draws every initial weight, in construction order.
T6Model::T6Model(const ModelConfig& c, Generator&& gen) : T6Model(c, ParameterInit(gen)) {}

// Validates first: an impossible config throws before any module is built.
T6Model::T6Model(const ModelConfig& c, const ParameterInit& init)
    : config((c.validate(), c)), transformer(register_module("transformer", std::make_unique<Transformer>(c, init))) {}

Tensor T6Model::positions(int64_t B, int64_t T) const {
  std::vector<int32_t> pos(static_cast<size_t>(B * T));
  for (int64_t i = 0; i < B * T; ++i) pos[i] = static_cast<int32_t>(i % T);
  return from_ints(pos, {B, T}, device());
}

// The trunk of the forward pass: embeddings and blocks, before the head. (B,T) ids → (B,T,d).
Tensor T6Model::trunk(const Tensor& idx_in) const {
  T6_CHECK(idx_in.ndim() == 2 && idx_in.dtype() == DType::I32, "T6Model: token ids must be an int32 (B,T) tensor, got ",
           dtype_name(idx_in.dtype()), " ", shape_str(idx_in.shape()));
  const int64_t B = idx_in.size(0), T = idx_in.size(1);
  T6_CHECK(T >= 1 && T <= config.block_size, "T6Model: a sequence of ", T, " tokens does not fit block_size ",
           config.block_size, "; use at most block_size tokens");
  const Tensor idx = idx_in.to_device(device());
  const Tensor pos = positions(B, T);

  Tensor x = transformer.wte.forward(idx);  // x = wte[idx]: (B,T,d)
  for (size_t i = 0; i < transformer.h.size(); ++i) x = transformer.block(i).forward(x, pos);
  return x;
}

void T6Model::check_targets(const Tensor& idx, const Tensor& targets) const {
  T6_CHECK(targets.shape() == idx.shape(), "T6Model: targets ", shape_str(targets.shape()),
           " must have the shape of the inputs ", shape_str(idx.shape()));
}

T6Model::Output T6Model::forward(const Tensor& idx, const Tensor& targets) const {
  if (targets.defined()) check_targets(idx, targets);
  Output out;
  out.logits = head(trunk(idx));  // rmsnorm(x) · wteᵀ: (B,T,V)
  if (targets.defined()) {
    out.loss = cross_entropy(out.logits, targets.to_device(device()));  // mean over targets ≠ −1
  }
  return out;
}

Tensor T6Model::loss(const Tensor& idx, const Tensor& targets) const {
  check_targets(idx, targets);
  const Tensor x = trunk(idx);
  const Tensor normed = rms_norm(x, config.norm_eps, product_input_dtype(x));  // read only by the head's product
  return linear_cross_entropy(normed, transformer.wte.weight, targets.to_device(device()));
}

Tensor T6Model::head(const Tensor& x) const {
  return transformer.wte.logits(rms_norm(x, config.norm_eps));  // x · wteᵀ, the tied head
}

void T6Model::check_cache(const KVCache& cache) const {
  T6_CHECK(static_cast<int64_t>(cache.layers()) == config.n_layer, "T6Model: a KV cache of ", cache.layers(),
           " layers for a model of ", config.n_layer);
  // A float32 model's factor cache may hold bfloat16 (nn/fused_decode.h: decode_cache_dtype).
  const DType dtype = transformer.wte.weight.dtype();
  for (const Tensor& t : cache.layer(0).buffers())
    T6_CHECK(t.device() == device() &&
                 (t.dtype() == dtype || (t.dtype() == DType::BF16 && dtype == DType::F32 && config.factorized_kv())),
             "T6Model: the KV cache holds ", dtype_name(t.dtype()), " on ", device_name(t.device()),
             " but the model is ", dtype_name(dtype), " on ", device_name(device()));
}

Tensor T6Model::prefill(const Tensor& idx_in, const std::vector<int64_t>& lengths, KVCache& cache) const {
  NoGradGuard no_grad;
  check_cache(cache);
  T6_CHECK(idx_in.ndim() == 2 && idx_in.dtype() == DType::I32, "T6Model::prefill: prompts must be an int32 (B,T) "
           "tensor, got ", dtype_name(idx_in.dtype()), " ", shape_str(idx_in.shape()));
  const int64_t B = idx_in.size(0), T = idx_in.size(1);
  T6_CHECK(B == cache.batch() && T <= cache.capacity() && T <= config.block_size, "T6Model::prefill: prompts ",
           shape_str(idx_in.shape()), " do not fit a KV cache of ", cache.batch(), " rows of ", cache.capacity(),
           " tokens with block_size ", config.block_size);
  T6_CHECK(static_cast<int64_t>(lengths.size()) == B, "T6Model::prefill: ", lengths.size(), " lengths for ", B,
           " rows");
  for (int64_t n : lengths) T6_CHECK(n >= 1 && n <= T, "T6Model::prefill: a prompt length of ", n, " in a (B,T) = ",
                                     shape_str(idx_in.shape()), " batch; each must be 1 to T");
  const Tensor idx = idx_in.to_device(device());
  const Tensor pos = positions(B, T);

  Tensor x = transformer.wte.forward(idx);  // (B,T,d)
  for (size_t i = 0; i < transformer.h.size(); ++i) x = transformer.block(i).prefill(x, pos, cache.layer(i));
  cache.set_lengths(lengths);
  std::vector<Tensor> last;  // each row's last prompt position: (1,1,d)
  for (int64_t b = 0; b < B; ++b) last.push_back(slice(slice(x, 0, b, b + 1), 1, lengths[b] - 1, lengths[b]));
  return reshape(head(concat(last, 0)), {B, config.vocab_size});  // (B,V)
}

Tensor T6Model::decode_step(const Tensor& tokens, KVCache& cache, const DecodeWeights* fused) const {
  NoGradGuard no_grad;
  check_cache(cache);
  T6_CHECK(tokens.ndim() == 1 && tokens.dtype() == DType::I32 && tokens.size(0) == cache.batch(),
           "T6Model::decode_step: tokens must be an int32 (B) tensor for a cache of ", cache.batch(), " rows, got ",
           dtype_name(tokens.dtype()), " ", shape_str(tokens.shape()));
  const DecodeSlots step = cache.decode_slots();  // each row's slot and position, uploaded once for every layer
  Tensor logits = decode_on_device(tokens.to_device(device()).contiguous_data(), step, cache, fused);
  cache.advance();
  return logits;
}

Tensor T6Model::decode_on_device(const Tensor& device_tokens, const DecodeSlots& step, KVCache& cache,
                                 const DecodeWeights* fused) const {
  if (fused) return fused_decode(*this, *fused, device_tokens, step, cache);
  NoGradGuard no_grad;
  const int64_t B = cache.batch();
  Tensor x = transformer.wte.forward(device_tokens.view({B, 1}));  // (B,1,d)
  for (size_t i = 0; i < transformer.h.size(); ++i) x = transformer.block(i).decode(x, step, cache.layer(i));
  return reshape(head(x), {B, config.vocab_size});  // (B,V)
}

}  // namespace t6
