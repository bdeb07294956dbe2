#include "nn/causal_attention.h"

#include "autograd/ops.h"
#include "core/backend.h"

namespace t6 {

Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  if (backend_of(q).prefers_fused_attention(q.size(3)))
    return flash_attention(q, k, v, scale);
  return composite_causal_attention(q, k, v, scale);
}

Tensor composite_causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  const int64_t B = q.size(0), Tq = q.size(1), H = q.size(2), dh = q.size(3);
  const int64_t Tk = k.size(1), Hkv = k.size(2), G = H / Hkv;  // G query heads share one key/value head
  T6_CHECK(H % Hkv == 0 && k.shape() == v.shape() && k.size(3) == dh && k.size(0) == B, "causal_attention: q ",
           shape_str(q.shape()), " does not fit k ", shape_str(k.shape()), " and v ", shape_str(v.shape()));
  // Stack each group's queries along time, so one batched matmul per key/value head serves the group:
  // (B,Tq,Hkv,G,dh) → (B,Hkv,G,Tq,dh) → (B,Hkv,G·Tq,dh)
  Tensor qh = reshape(permute(reshape(q, {B, Tq, Hkv, G, dh}), {0, 2, 3, 1, 4}), {B, Hkv, G * Tq, dh});
  Tensor kh = contiguous(permute(k, {0, 2, 1, 3}));                         // (B,Hkv,Tk,dh)
  Tensor vh = contiguous(permute(v, {0, 2, 1, 3}));                         // (B,Hkv,Tk,dh)
  Tensor scores = reshape(matmul(qh, kh, false, true), {B, Hkv, G, Tq, Tk});  // q·kᵀ: (B,Hkv,G,Tq,Tk)
  Tensor att = softmax(scores, scale, /*causal=*/true);                      // each row sums to 1
  Tensor y = matmul(reshape(att, {B, Hkv, G * Tq, Tk}), vh);                 // (B,Hkv,G·Tq,dh)
  y = permute(reshape(y, {B, Hkv, G, Tq, dh}), {0, 3, 1, 2, 4});             // (B,Tq,Hkv,G,dh)
  return reshape(y, {B, Tq, H * dh});                                        // head h = kv·G + g
}

}  // namespace t6
