// Fused causal attention: softmax(scale · q kᵀ + causal mask) v in one kernel per direction, the
// FlashAttention-2 scheme. The composite version (two matmuls and a softmax, nn/causal_attention.cpp)
// stores the [B, H, Tq, Tk] probabilities for backward; this op stores only the output and one
// log-sum-exp per query row, and backward recomputes the probabilities tile by tile. At the paper's
// small T6 (B=16, H=34, T=1024) that is 2.3 GB per layer not kept.
#include "autograd/mixed_precision.h"
#include "autograd/ops.h"
#include "autograd/ops/checks.h"
#include "core/backend.h"

namespace t6 {

Tensor flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  check_same_kind("flash_attention", q, k);
  check_same_kind("flash_attention", q, v);
  T6_CHECK(q.ndim() == 4 && k.ndim() == 4 && k.shape() == v.shape(), "flash_attention: needs q (B,Tq,H,dh) and k, v ",
           "(B,Tk,Hkv,dh) of one shape; got q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ",
           shape_str(v.shape()));
  Backend::FlashAttention p;
  p.batch = q.size(0), p.q_len = q.size(1), p.heads = q.size(2), p.head_dim = q.size(3);
  p.kv_len = k.size(1), p.kv_heads = k.size(2);
  p.scale = scale;
  T6_CHECK(k.size(0) == p.batch && k.size(3) == p.head_dim && p.kv_heads > 0 && p.heads % p.kv_heads == 0 &&
               p.q_len <= p.kv_len,
           "flash_attention: q ", shape_str(q.shape()), " does not fit k/v ", shape_str(k.shape()),
           ": batch and head_dim must match, kv heads must divide the query heads, and Tq ≤ Tk");
  // Mixed precision multiplies bfloat16 copies of q, k, v and keeps those (half the size) for backward,
  // as matmul does; the kernels read half the bytes for every tile. A backend without bfloat16
  // products (multiplies_bf16() false) stays in the inputs' dtype.
  const bool bf16 = bf16_matmul_enabled() && q.dtype() == DType::F32 && backend_of(q).multiplies_bf16();
  const auto operand = [bf16](const Tensor& x) { return bf16 ? x.to_dtype(DType::BF16) : x.contiguous_data(); };
  const Tensor qc = operand(q), kc = operand(k), vc = operand(v);
  Tensor out = empty({p.batch, p.q_len, p.heads, p.head_dim}, q.dtype(), q.device());  // (B,Tq,H,dh)
  Tensor lse = empty({p.batch, p.heads, p.q_len}, q.dtype(), q.device());              // (B,H,Tq)
  backend_of(q).flash_attention_forward(p, qc, kc, vc, out, lse);
  Tensor y = out.view({p.batch, p.q_len, p.heads * p.head_dim});  // heads concatenated: (B,Tq,H·dh)
  if (Node* node = make_node("flash_attention", y, {q, k, v})) {
    node->backward = [p, q = node->save(qc), k = node->save(kc), v = node->save(vc), out = node->save(out),
                      lse = node->save(lse), operand](const Tensor& gy) -> Grads {
      // the gradients have the inputs' dtype (float32 under mixed precision), like out
      Tensor gq = empty(q.shape(), out.dtype(), q.device()), gk = empty(k.shape(), out.dtype(), k.device()),
             gv = empty(v.shape(), out.dtype(), v.device());
      backend_of(q).flash_attention_backward(p, q, k, v, out, lse, operand(gy).view(out.shape()), gq, gk, gv);
      return {gq, gk, gv};
    };
  }
  return y;
}

}  // namespace t6
