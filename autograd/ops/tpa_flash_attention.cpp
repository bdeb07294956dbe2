// TPA's fused causal attention: softmax(scale · q kᵀ + causal mask) v with TPA's heads
// q = (1/RQ) A_q B_q, k = (1/R) A_k B_k, v = (1/R) A_v B_v formed from the per-token factors inside the
// backend's call (on the GPU straight to bfloat16 under mixed precision) and freed after it. The
// composite (three tpa_product ops, casts and flash_attention) keeps the float32 factors for
// tpa_product's backward and bfloat16 copies of q, k and v for attention's; this op keeps only the
// factors (R·(H + dh) numbers per token instead of H·dh, for each of q, k, v), out and lse, forms the
// heads again in backward and hands back the factor gradients. At the paper's small T6 that took the
// peak memory of a bf16 training step from 25.7 to 17.1 GB (docs/PERF.md).
// tests/test_tpa_flash_attention.cpp holds it to that composite.
#include <vector>

#include "autograd/mixed_precision.h"
#include "autograd/ops.h"
#include "autograd/ops/checks.h"
#include "core/backend.h"

namespace t6 {

namespace {

void check_factor(const Tensor& x, const char* name, const Tensor& like, const Shape& expected) {
  T6_CHECK(x.defined(), "tpa_flash_attention: ", name, " is an undefined tensor");
  T6_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::F64 || x.dtype() == DType::BF16,
           "tpa_flash_attention: ", name, " must be float32, float64 or bfloat16, got ", dtype_name(x.dtype()));
  T6_CHECK(x.dtype() == like.dtype() && x.device() == like.device(), "tpa_flash_attention: ", name, " is ",
           dtype_name(x.dtype()), " on ", device_name(x.device()), " but b_k is ", dtype_name(like.dtype()), " on ",
           device_name(like.device()), "; give every factor one dtype and device");
  T6_CHECK(x.shape() == expected, "tpa_flash_attention: ", name, " has shape ", shape_str(x.shape()), ", expected ",
           shape_str(expected), " (from b_k (B,T,R,dh) and a_k (B,T,H,R))");
}

Backend::TPAFlashAttention shape_of(const Tensor& a_q, const Tensor& b_q, const Tensor& a_k, const Tensor& b_k,
                                    const Tensor& a_v, const Tensor& b_v, double scale) {
  T6_CHECK(b_k.defined() && a_k.defined() && b_k.ndim() == 4 && a_k.ndim() == 4,
           "tpa_flash_attention: needs a_k (B,T,H,R) and b_k (B,T,R,dh)");
  Backend::TPAFlashAttention p;
  p.batch = b_k.size(0), p.seq_len = b_k.size(1), p.rank = b_k.size(2), p.head_dim = b_k.size(3);
  p.heads = a_k.size(2), p.q_rank = a_q.defined() ? a_q.size(-1) : 0, p.scale = scale;
  T6_CHECK(p.rank > 0 && p.heads > 0, "tpa_flash_attention: rank and heads must be at least 1; a_k is ",
           shape_str(a_k.shape()));
  const Shape a_shape{p.batch, p.seq_len, p.heads, p.rank}, b_shape{p.batch, p.seq_len, p.rank, p.head_dim};
  check_factor(a_k, "a_k", b_k, a_shape);
  check_factor(a_v, "a_v", b_k, a_shape);
  check_factor(b_v, "b_v", b_k, b_shape);
  if (a_q.defined()) {
    T6_CHECK(p.q_rank > 0, "tpa_flash_attention: a_q needs a query rank of at least 1; got ", shape_str(a_q.shape()));
    check_factor(a_q, "a_q", b_k, {p.batch, p.seq_len, p.heads, p.q_rank});
    check_factor(b_q, "b_q", b_k, {p.batch, p.seq_len, p.q_rank, p.head_dim});
  } else {
    check_factor(b_q, "b_q (the query heads, as a_q is undefined)", b_k, {p.batch, p.seq_len, p.heads, p.head_dim});
  }
  return p;
}

}  // namespace

Tensor tpa_flash_attention(const Tensor& a_q, const Tensor& b_q, const Tensor& a_k, const Tensor& b_k,
                           const Tensor& a_v, const Tensor& b_v, double scale, std::optional<DType> out_dtype) {
  Backend::TPAFlashAttention p = shape_of(a_q, b_q, a_k, b_k, a_v, b_v, scale);
  Backend& be = backend_of(b_k);
  // Mixed precision forms the heads from float32 or bfloat16 factors and rounds them to bfloat16 on
  // chip (no cast kernels, no copies). Without bfloat16 products a bfloat16 factor is widened first.
  const DType dtype = b_k.dtype();
  p.bf16_products = be.multiplies_bf16() && dtype != DType::F64 && (bf16_matmul_enabled() || dtype == DType::BF16);
  const DType work = p.bf16_products || dtype != DType::BF16 ? dtype : DType::F32;
  const auto data = [work](const Tensor& x) { return x.defined() ? x.contiguous_data().to_dtype(work) : x; };
  const Backend::TPAFactorTensors f{data(a_q), data(b_q), data(a_k), data(b_k), data(a_v), data(b_v)};
  const DType kernel_out = p.bf16_products ? DType::F32 : work;
  Tensor out = empty({p.batch, p.seq_len, p.heads, p.head_dim}, kernel_out, b_k.device());  // (B,T,H,dh)
  Tensor lse = empty({p.batch, p.heads, p.seq_len}, kernel_out, b_k.device());              // (B,H,T)
  if (out.numel() > 0) be.tpa_flash_attention_forward(p, f, out, lse);
  // A bfloat16 output is the one copy of it kept: for this backward and for the product that reads it
  // (c_proj), where a float32 out would be kept here and its bfloat16 cast there.
  if (output_dtype("tpa_flash_attention", out, out_dtype) != out.dtype()) out = out.to_dtype(*out_dtype);
  Tensor y = out.view({p.batch, p.seq_len, p.heads * p.head_dim});  // heads concatenated: (B,T,H·dh)
  std::vector<Tensor> inputs{b_q, a_k, b_k, a_v, b_v};
  if (a_q.defined()) inputs.insert(inputs.begin(), a_q);
  if (Node* node = make_node("tpa_flash_attention", y, inputs)) {
    const auto keep = [node](const Tensor& t) { return t.defined() ? node->save(t) : t; };  // a_q may be absent
    const Backend::TPAFactorTensors saved{keep(f.a_q), keep(f.b_q), keep(f.a_k), keep(f.b_k), keep(f.a_v), keep(f.b_v)};
    node->backward = [p, saved, out = node->save(out), lse = node->save(lse), dtype](const Tensor& gy) -> Grads {
      const auto like = [](const Tensor& x) { return x.defined() ? empty_like(x) : x; };
      Backend::TPAFactorTensors g{like(saved.a_q), like(saved.b_q), like(saved.a_k),
                                  like(saved.b_k), like(saved.a_v), like(saved.b_v)};
      if (out.numel() == 0) {  // T = 0 or dh = 0: nothing flows back
        for (Tensor* t : {&g.a_q, &g.b_q, &g.a_k, &g.b_k, &g.a_v, &g.b_v})
          if (t->defined()) *t = zeros_like(*t);
      } else {
        const Tensor gout = gy.contiguous_data().to_dtype(p.bf16_products ? DType::BF16 : lse.dtype());
        backend_of(out).tpa_flash_attention_backward(p, saved, out, lse, gout.view(out.shape()), g);
      }
      // the gradients take the inputs' dtype (a widened bfloat16 factor gets a bfloat16 gradient)
      Grads grads;
      for (const Tensor& t : {g.a_q, g.b_q, g.a_k, g.b_k, g.a_v, g.b_v})
        if (t.defined()) grads.push_back(t.to_dtype(dtype));
      return grads;
    };
  }
  return y;
}

}  // namespace t6
