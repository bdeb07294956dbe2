// What a generation's KV cache costs per token, for a model and for multi-head, grouped-query and
// multi-query attention over the same heads, and how many sequences of a given context a device's
// memory holds with each: the arithmetic behind TPA's memory advantage (bench_decode --capacity).
//
// "The same heads" are the H query heads of width dh the model attends with. MHA caches every key and
// value head, 2·H·dh numbers per token and layer (4,352 for the paper's small T6, whose factors take
// 2R(H + dh) = 392); GQA caches g of them, 2·g·dh; MQA one, 2·dh. Each variant is a ModelConfig of its
// own, so its cache numbers come from ModelConfig::kv_cache_numbers_per_token_per_layer (what KVCache
// allocates) and its weights from parameter_total (what T6Model registers): no second formula.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "nn/model_config.h"

namespace t6 {

struct CacheVariant {
  std::string name;     // "TPA factors (this model)", "MHA, 34 heads", "GQA, 2 kv heads", "MQA, 1 kv head"
  ModelConfig config;   // the model with this attention: same d, layers, MLP, vocabulary and heads

  int64_t numbers_per_token_layer() const { return config.kv_cache_numbers_per_token_per_layer(); }
  int64_t bytes_per_token_layer(DType cache) const;  // the numbers times the element size
  int64_t bytes_per_token(DType cache) const;        // of all layers
};

// The model itself, then MHA, GQA and MQA over its H heads of head_dim. The GQA variant has
// `gqa_kv_heads` key/value heads; 0 picks the model's own n_kv_head for a GQA model, else the largest
// divisor of H not above H/4 (groups of at least four query heads; for H = 34 that is 2).
std::vector<CacheVariant> same_heads_variants(const ModelConfig& config, int64_t gqa_kv_heads = 0);

// What decoding with a model holds in device memory: its weights (every parameter, in `weights`), and
// per sequence of `context` tokens its cache (in `cache`) and its float32 logits row (V numbers). The
// activations of a decode step (a few vectors of width d per sequence) and the backend's workspaces are
// not counted.
struct DecodeMemory {
  int64_t weight_bytes = 0;
  int64_t cache_bytes_per_token = 0;  // all layers, one sequence
  int64_t logits_bytes = 0;           // one sequence

  DecodeMemory(const ModelConfig& config, DType weights, DType cache);
  int64_t per_sequence(int64_t context) const { return context * cache_bytes_per_token + logits_bytes; }
  int64_t total(int64_t batch, int64_t context) const { return weight_bytes + batch * per_sequence(context); }
  // The most sequences of `context` tokens that fit `memory` bytes; 0 when not even one does.
  int64_t max_batch(int64_t memory, int64_t context) const;
  // The longest context each of `batch` sequences can hold in `memory` bytes; 0 when none fits.
  int64_t max_context(int64_t memory, int64_t batch) const;
};

}  // namespace t6
