#include "nn/gqa_attention.h"

#include <cmath>

#include "nn/cached_heads_decode.h"
#include "nn/causal_attention.h"

namespace t6 {

GQAAttention::GQAAttention(const ModelConfig& c, const ParameterInit& init)
    : config(c),
      c_q(register_module("c_q", xavier_linear(c.n_embd, c.n_head * c.head_dim, init))),
      c_k(register_module("c_k", xavier_linear(c.n_embd, c.kv_heads() * c.head_dim, init))),
      c_v(register_module("c_v", xavier_linear(c.n_embd, c.kv_heads() * c.head_dim, init))),
      c_proj(register_module("c_proj", std::make_unique<Linear>(c.n_head * c.head_dim, c.n_embd, 0.0, init))) {}

Tensor GQAAttention::queries(const Tensor& x, const Tensor& positions) const {
  return rope(reshape(c_q.forward(x), {x.size(0), x.size(1), config.n_head, config.head_dim}), positions);
}

Tensor GQAAttention::keys(const Tensor& x, const Tensor& positions) const {
  return rope(reshape(c_k.forward(x), {x.size(0), x.size(1), config.kv_heads(), config.head_dim}), positions);
}

Tensor GQAAttention::values(const Tensor& x) const {
  return reshape(c_v.forward(x), {x.size(0), x.size(1), config.kv_heads(), config.head_dim});
}

Tensor GQAAttention::attend(const Tensor& q, const Tensor& k, const Tensor& v) const {
  Tensor y = causal_attention(q, k, v, 1.0 / std::sqrt(static_cast<double>(config.head_dim)));  // (B,T,H·dh)
  return c_proj.forward(y);  // (B,T,d)
}

Tensor GQAAttention::forward(const Tensor& x, const Tensor& positions) const {
  return attend(queries(x, positions), keys(x, positions), values(x));
}

Tensor GQAAttention::prefill(const Tensor& x, const Tensor& positions, LayerKVCache& cache) const {
  const Tensor k = keys(x, positions), v = values(x);  // (B,T,kv_heads,dh)
  const std::vector<int64_t> from_start(static_cast<size_t>(x.size(0)), 0);
  write_cache(cache.k, permute(k, {0, 2, 1, 3}), from_start, /*time_axis=*/2);  // the cache is head-major
  write_cache(cache.v, permute(v, {0, 2, 1, 3}), from_start, /*time_axis=*/2);
  return attend(queries(x, positions), k, v);
}

Tensor GQAAttention::decode(const Tensor& x, const DecodeSlots& step, LayerKVCache& cache) const {
  const int64_t B = x.size(0), H = config.n_head, dh = config.head_dim;
  // the new token's heads (B,1,kv_heads,dh), into the head-major cache
  write_cache(cache.k, permute(keys(x, step.positions), {0, 2, 1, 3}), step.slots, /*time_axis=*/2);
  write_cache(cache.v, permute(values(x), {0, 2, 1, 3}), step.slots, /*time_axis=*/2);
  const Tensor q = reshape(queries(x, step.positions), {B, H, dh});
  const Tensor y = cached_heads_decode(q, cache.k, cache.v, step.lengths);  // (B,H,dh)
  return c_proj.forward(reshape(y, {B, 1, H * dh}));  // (B,1,d)
}

}  // namespace t6
