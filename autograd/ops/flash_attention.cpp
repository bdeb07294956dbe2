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
  p.bf16_inputs = bf16_matmul_enabled();
  T6_CHECK(k.size(0) == p.batch && k.size(3) == p.head_dim && p.kv_heads > 0 && p.heads % p.kv_heads == 0 &&
               p.q_len <= p.kv_len,
           "flash_attention: q ", shape_str(q.shape()), " does not fit k/v ", shape_str(k.shape()),
           ": batch and head_dim must match, kv heads must divide the query heads, and Tq ≤ Tk");
  const Tensor qc = q.contiguous_data(), kc = k.contiguous_data(), vc = v.contiguous_data();
  Tensor out = empty({p.batch, p.q_len, p.heads, p.head_dim}, q.dtype(), q.device());  // (B,Tq,H,dh)
  Tensor lse = empty({p.batch, p.heads, p.q_len}, q.dtype(), q.device());              // (B,H,Tq)
  backend_of(q).flash_attention_forward(p, qc, kc, vc, out, lse);
  Tensor y = out.view({p.batch, p.q_len, p.heads * p.head_dim});  // heads concatenated: (B,Tq,H·dh)
  if (Node* node = make_node("flash_attention", y, {q, k, v})) {
    node->backward = [p, q = node->save(qc), k = node->save(kc), v = node->save(vc), out = node->save(out),
                      lse = node->save(lse)](const Tensor& gy) -> Grads {
      Tensor gq = empty_like(q), gk = empty_like(k), gv = empty_like(v);
      backend_of(q).flash_attention_backward(p, q, k, v, out, lse, gy.contiguous_data().view(out.shape()), gq, gk,
                                             gv);
      return {gq, gk, gv};
    };
  }
  return y;
}

}  // namespace t6
