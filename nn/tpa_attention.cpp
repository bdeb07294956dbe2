#include "nn/tpa_attention.h"

#include <cmath>

#include "autograd/mixed_precision.h"
#include "core/backend.h"
#include "nn/causal_attention.h"
#include "nn/flash_tpa_decode.h"

namespace t6 {

namespace {

// Xavier bounds of the spec: W_A_x viewed [d, H, Rx], W_B_x viewed [d, Rx, dh].
double factor_a_bound(const ModelConfig& c, int64_t rank) {
  return std::sqrt(6.0 / static_cast<double>(c.n_head * rank + c.n_embd * rank));
}
double factor_b_bound(const ModelConfig& c, int64_t rank) {
  return std::sqrt(6.0 / static_cast<double>(rank * c.head_dim + c.n_embd * c.head_dim));
}

}  // namespace

Linear* TPAFactorProjections::add(bool present, const char* name, int64_t in, int64_t out, double bound,
                                  const ParameterInit& init) {
  return present ? &register_module(name, std::make_unique<Linear>(in, out, bound, init)) : nullptr;
}

TPAFactorProjections::TPAFactorProjections(const ModelConfig& c, const ParameterInit& init)
    // Members initialise in declaration order, which is the spec's order: A_q, A_k, A_v, B_q, B_k, B_v.
    : W_A_q(add(c.factorized_query(), "W_A_q", c.n_embd, c.n_head * c.q_rank, factor_a_bound(c, c.q_rank), init)),
      W_A_k(*add(true, "W_A_k", c.n_embd, c.n_head * c.rank, factor_a_bound(c, c.rank), init)),
      W_A_v(*add(true, "W_A_v", c.n_embd, c.n_head * c.rank, factor_a_bound(c, c.rank), init)),
      W_B_q(add(c.factorized_query(), "W_B_q", c.n_embd, c.q_rank * c.head_dim, factor_b_bound(c, c.q_rank), init)),
      W_B_k(*add(true, "W_B_k", c.n_embd, c.rank * c.head_dim, factor_b_bound(c, c.rank), init)),
      W_B_v(*add(true, "W_B_v", c.n_embd, c.rank * c.head_dim, factor_b_bound(c, c.rank), init)) {}

TPAAttention::TPAAttention(const ModelConfig& c, const ParameterInit& init)
    : config(c),
      c_q(c.factorized_query() ? nullptr
                               : &register_module("c_q", xavier_linear(c.n_embd, c.n_head * c.head_dim, init))),
      c_qkv(register_module("c_qkv", std::make_unique<TPAFactorProjections>(c, init))),
      c_proj(register_module("c_proj", std::make_unique<Linear>(c.n_head * c.head_dim, c.n_embd, 0.0, init))) {}

TPAAttention::KVFactors TPAAttention::key_value_factors(const Tensor& x, const Tensor& positions) const {
  const int64_t B = x.size(0), T = x.size(1), H = config.n_head, R = config.rank, dh = config.head_dim;
  KVFactors f;
  f.a_k = reshape(c_qkv.W_A_k.forward(x), {B, T, H, R});                    // A_k[h,r] = feature h·R + r
  f.b_k = rope(reshape(c_qkv.W_B_k.forward(x), {B, T, R, dh}), positions);  // B_k[r,j] = feature r·dh + j
  f.a_v = reshape(c_qkv.W_A_v.forward(x), {B, T, H, R});
  f.b_v = reshape(c_qkv.W_B_v.forward(x), {B, T, R, dh});  // values are not rotated
  return f;
}

TPAAttention::QueryFactors TPAAttention::query_factors(const Tensor& x, const Tensor& positions) const {
  const int64_t B = x.size(0), T = x.size(1), H = config.n_head, RQ = config.q_rank, dh = config.head_dim;
  QueryFactors f;
  if (!config.factorized_query()) {
    f.b_q = rope(reshape(c_q->forward(x), {B, T, H, dh}), positions);
    return f;
  }
  f.a_q = reshape(c_qkv.W_A_q->forward(x), {B, T, H, RQ});
  f.b_q = rope(reshape(c_qkv.W_B_q->forward(x), {B, T, RQ, dh}), positions);
  return f;
}

Tensor TPAAttention::heads_of(const QueryFactors& f) const {
  return config.factorized_query() ? tpa_product(f.a_q, f.b_q) : f.b_q;  // (1/RQ) A_q B_q: (B,T,H,dh)
}

Tensor TPAAttention::attend(const QueryFactors& q, const KVFactors& f) const {
  const double scale = 1.0 / std::sqrt(static_cast<double>(config.head_dim));
  // The fused op forms the heads inside and does not keep them for backward; only heads too wide for a
  // backend's fused kernels are formed here and attended by the composite path. Under mixed precision
  // only c_proj's product reads y, so it comes in bfloat16.
  const Tensor y =
      backend_of(f.b_k).prefers_fused_attention(config.head_dim)
          ? tpa_flash_attention(q.a_q, q.b_q, f.a_k, f.b_k, f.a_v, f.b_v, scale, product_input_dtype(f.b_k))
          : causal_attention(heads_of(q), tpa_product(f.a_k, f.b_k), tpa_product(f.a_v, f.b_v), scale);
  return c_proj.forward(y);  // y (B,T,H·dh) → (B,T,d)
}

Tensor TPAAttention::forward(const Tensor& x, const Tensor& positions) const {
  const KVFactors f = key_value_factors(x, positions);
  return attend(query_factors(x, positions), f);
}

Tensor TPAAttention::prefill(const Tensor& x, const Tensor& positions, LayerKVCache& cache) const {
  const KVFactors f = key_value_factors(x, positions);
  const std::vector<int64_t> from_start(static_cast<size_t>(x.size(0)), 0);
  write_cache(cache.a_k, f.a_k, from_start);
  write_cache(cache.b_k, f.b_k, from_start);
  write_cache(cache.a_v, f.a_v, from_start);
  write_cache(cache.b_v, f.b_v, from_start);
  return attend(query_factors(x, positions), f);
}

Tensor TPAAttention::decode(const Tensor& x, const DecodeSlots& step, LayerKVCache& cache) const {
  const int64_t B = x.size(0), H = config.n_head, RQ = config.q_rank, dh = config.head_dim;
  const KVFactors f = key_value_factors(x, step.positions);  // (B,1,…): the new token's factors
  write_cache_at(cache.a_k, f.a_k, step.positions);
  write_cache_at(cache.b_k, f.b_k, step.positions);
  write_cache_at(cache.a_v, f.a_v, step.positions);
  write_cache_at(cache.b_v, f.b_v, step.positions);
  const QueryFactors qf = query_factors(x, step.positions);
  TPAQuery query;
  if (config.factorized_query()) {
    query.a_q = reshape(qf.a_q, {B, H, RQ});
    query.b_q = reshape(qf.b_q, {B, RQ, dh});
  } else {
    query.b_q = reshape(qf.b_q, {B, H, dh});
  }
  const Tensor y = flash_tpa_decode(query, cache, step.device_lengths);  // (B,H,dh)
  return c_proj.forward(reshape(y, {B, 1, H * dh}));                      // (B,1,d)
}

}  // namespace t6
