#include "core/tpa_flash_by_heads.h"

namespace t6 {

namespace {

Backend::TPAProduct product_of(const Backend::TPAFlashAttention& p, int64_t rank) {
  Backend::TPAProduct t;
  t.tokens = p.batch * p.seq_len, t.heads = p.heads, t.rank = rank, t.head_dim = p.head_dim;
  t.scale = 1.0 / static_cast<double>(rank);
  return t;
}

// tpa_product has no bfloat16 kernels: a bfloat16 factor goes in as float32
Tensor widened(const Tensor& x) { return x.defined() && x.dtype() == DType::BF16 ? x.to_dtype(DType::F32) : x; }

// The heads (1/rank) a·b per token (rank 0: b holds them), bfloat16 with bf16_products
Tensor heads_of(Backend& backend, const Backend::TPAFlashAttention& p, const Tensor& a, const Tensor& b,
                int64_t rank) {
  Tensor heads = widened(b);
  if (rank > 0) {
    heads = empty({p.batch, p.seq_len, p.heads, p.head_dim}, heads.dtype(), b.device());
    backend.tpa_product_forward(product_of(p, rank), widened(a), widened(b), heads);
  }
  return p.bf16_products ? heads.to_dtype(DType::BF16) : heads;
}

struct Heads {
  Tensor q, k, v;
};
Heads all_heads(Backend& backend, const Backend::TPAFlashAttention& p, const Backend::TPAFactorTensors& f) {
  return {heads_of(backend, p, f.a_q, f.b_q, p.q_rank), heads_of(backend, p, f.a_k, f.b_k, p.rank),
          heads_of(backend, p, f.a_v, f.b_v, p.rank)};
}

// `grad` itself when it has dtype `dtype`, else a new tensor of its shape to be cast into it
Tensor in_dtype(const Tensor& grad, DType dtype) {
  return grad.dtype() == dtype ? grad : empty(grad.shape(), dtype, grad.device());
}
void settle(Backend& backend, const Tensor& computed, Tensor& grad) {
  if (computed.dtype() != grad.dtype()) backend.cast(computed, grad);
}

// ga = (1/R) g bᵀ and gb = (1/R) aᵀ g per token, computed in g's dtype
void contract(Backend& backend, const Backend::TPAProduct& t, const Tensor& a, const Tensor& b, const Tensor& g,
              Tensor& ga, Tensor& gb) {
  Tensor ga_work = in_dtype(ga, g.dtype()), gb_work = in_dtype(gb, g.dtype());
  backend.tpa_product_backward(t, widened(a), widened(b), g, ga_work, gb_work);
  settle(backend, ga_work, ga);
  settle(backend, gb_work, gb);
}

}  // namespace

Backend::FlashAttention tpa_attention_shape(const Backend::TPAFlashAttention& p) {
  Backend::FlashAttention a;
  a.batch = p.batch, a.q_len = a.kv_len = p.seq_len, a.heads = a.kv_heads = p.heads, a.head_dim = p.head_dim;
  a.scale = p.scale;
  return a;
}

void tpa_factor_gradients(Backend& backend, const Backend::TPAFlashAttention& p, const Backend::TPAFactorTensors& f,
                          const Tensor& gq, const Tensor& gk, const Tensor& gv, Backend::TPAFactorTensors& grads) {
  if (p.q_rank > 0) contract(backend, product_of(p, p.q_rank), f.a_q, f.b_q, gq, grads.a_q, grads.b_q);
  else if (gq.dtype() == grads.b_q.dtype()) backend.strided_copy(gq, grads.b_q);
  else backend.cast(gq, grads.b_q);
  contract(backend, product_of(p, p.rank), f.a_k, f.b_k, gk, grads.a_k, grads.b_k);
  contract(backend, product_of(p, p.rank), f.a_v, f.b_v, gv, grads.a_v, grads.b_v);
}

void tpa_flash_attention_by_heads_forward(Backend& backend, const Backend::TPAFlashAttention& p,
                                          const Backend::TPAFactorTensors& f, Tensor& out, Tensor& lse) {
  const Heads h = all_heads(backend, p, f);
  backend.flash_attention_forward(tpa_attention_shape(p), h.q, h.k, h.v, out, lse);
}

void tpa_flash_attention_by_heads_backward(Backend& backend, const Backend::TPAFlashAttention& p,
                                           const Backend::TPAFactorTensors& f, const Tensor& out, const Tensor& lse,
                                           const Tensor& gout, Backend::TPAFactorTensors& grads) {
  const Heads h = all_heads(backend, p, f);
  const Shape heads_shape{p.batch, p.seq_len, p.heads, p.head_dim};
  Tensor gq = empty(heads_shape, lse.dtype(), out.device()), gk = empty(heads_shape, lse.dtype(), out.device()),
         gv = empty(heads_shape, lse.dtype(), out.device());
  backend.flash_attention_backward(tpa_attention_shape(p), h.q, h.k, h.v, widened(out), lse, gout, gq, gk, gv);
  tpa_factor_gradients(backend, p, f, gq, gk, gv, grads);
}

}  // namespace t6
