// bf16 mixed precision: a thread-local switch, scoped like NoGradGuard, under which matmul (and the
// fused attention, autograd/ops/flash_attention.cpp) multiplies bfloat16 copies of its float32 inputs
// with float32 accumulation and a float32 result. Weights, gradients and optimizer state stay float32
// (the "master" copies); only the product inputs are rounded. Everything else (softmax, norms, the
// loss) is float32 anyway. On a backend without bfloat16 products (Backend::multiplies_bf16() false:
// the CPU) the switch has no effect, and matmul there stays float32.
//
// The contract between producers and products: a product (matmul, linear_cross_entropy) accepts a
// bfloat16 activation as it is, multiplies it without a cast and keeps it for backward; the gradient
// it returns for it is float32. So a producer whose only consumers are products (rms_norm before the
// projections, swiglu before c_proj) writes product_input_dtype() and the cast kernel disappears; the
// value is the one the product would have rounded to, so the numerics are unchanged.
#pragma once
#include "core/tensor.h"

namespace t6 {

bool bf16_matmul_enabled();

// The dtype a producer writes when only products read its output: bfloat16 under the switch on a
// backend that multiplies_bf16(), for a float32 x; x's own dtype otherwise (the CPU: unchanged).
DType product_input_dtype(const Tensor& x);

// The bfloat16 copy of a float32 matmul input. The last copy made is remembered with its source and
// handed out again while the source is the same, unchanged tensor (same storage, view and version):
// TPA's six factor projections and the MLP's two input projections all multiply one normalised x,
// which would otherwise be cast, and kept for backward, once per projection. The memory holds no
// reference to the source; guards forget it on exit. A bfloat16 x is its own copy.
Tensor bf16_copy(const Tensor& x);

// The bfloat16 copy of a float32 master weight (a leaf that requires grad) while gradients are
// recorded, made once per value of the weight: copies are kept per weight and made again only when the
// storage's version moved (the optimizer step bumps it), so the micro-batches of gradient accumulation
// share one copy instead of casting every weight in every forward. The price is a bfloat16 copy of
// every weight held between steps (250 MB for the paper's small T6). Any other tensor, and any tensor
// under NoGradGuard (inference, whose decode step captures CUDA graphs that must own their buffers),
// gets a fresh copy. Guards forget the copies on exit.
Tensor bf16_weight(const Tensor& w);

// Sets the switch to `enabled` for a scope and restores the previous value on exit, so guards nest
// (an inner Bf16MatmulGuard(false) runs a sub-scope in float32).
// Leaving a guard forgets bf16_copy's remembered copy and bf16_weight's copies.
class Bf16MatmulGuard {
 public:
  explicit Bf16MatmulGuard(bool enabled = true);
  ~Bf16MatmulGuard();
  Bf16MatmulGuard(const Bf16MatmulGuard&) = delete;
  Bf16MatmulGuard& operator=(const Bf16MatmulGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace t6
