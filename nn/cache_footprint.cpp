#include "nn/cache_footprint.h"

#include <algorithm>

#include "core/error.h"
#include "nn/parameter_layout.h"

namespace t6 {

int64_t CacheVariant::bytes_per_token_layer(DType cache) const {
  return numbers_per_token_layer() * static_cast<int64_t>(dtype_size(cache));
}

int64_t CacheVariant::bytes_per_token(DType cache) const { return config.n_layer * bytes_per_token_layer(cache); }

namespace {

int64_t default_gqa_kv_heads(const ModelConfig& c) {
  if (c.attention == AttentionKind::GQA) return c.n_kv_head;
  int64_t g = std::max<int64_t>(1, c.n_head / 4);
  while (c.n_head % g != 0) --g;
  return g;
}

ModelConfig with_attention(ModelConfig c, AttentionKind attention, int64_t kv_heads) {
  c.attention = attention;
  c.n_kv_head = attention == AttentionKind::GQA ? kv_heads : 0;
  return c;
}

}  // namespace

std::vector<CacheVariant> same_heads_variants(const ModelConfig& c, int64_t gqa_kv_heads) {
  const int64_t g = gqa_kv_heads > 0 ? gqa_kv_heads : default_gqa_kv_heads(c);
  T6_CHECK(c.n_head % g == 0, "GQA needs key/value heads that divide the ", c.n_head, " query heads; ", g,
           " does not");
  const std::string name = c.factorized_kv() ? cat("TPA factors (", c.attention_name(), ", this model)")
                                             : cat(c.attention_name(), " (this model)");
  return {{name, c},
          {cat("MHA, ", c.n_head, " heads"), with_attention(c, AttentionKind::MHA, 0)},
          {cat("GQA, ", g, " kv heads"), with_attention(c, AttentionKind::GQA, g)},
          {"MQA, 1 kv head", with_attention(c, AttentionKind::MQA, 0)}};
}

DecodeMemory::DecodeMemory(const ModelConfig& c, DType weights, DType cache)
    : weight_bytes(parameter_total(c) * static_cast<int64_t>(dtype_size(weights))),
      cache_bytes_per_token(c.n_layer * c.kv_cache_numbers_per_token_per_layer() *
                            static_cast<int64_t>(dtype_size(cache))),
      logits_bytes(c.vocab_size * static_cast<int64_t>(sizeof(float))) {}

int64_t DecodeMemory::max_batch(int64_t memory, int64_t context) const {
  T6_CHECK(context >= 1, "max_batch: a context of at least one token, got ", context);
  return std::max<int64_t>(0, (memory - weight_bytes) / per_sequence(context));
}

int64_t DecodeMemory::max_context(int64_t memory, int64_t batch) const {
  T6_CHECK(batch >= 1, "max_context: a batch of at least one sequence, got ", batch);
  const int64_t per_row = (memory - weight_bytes) / batch - logits_bytes;
  return std::max<int64_t>(0, per_row / cache_bytes_per_token);
}

}  // namespace t6
