// bf16 mixed precision: a thread-local switch, scoped like NoGradGuard, under which matmul (and the
// fused attention, autograd/ops/flash_attention.cpp) multiplies bfloat16 copies of its float32 inputs
// with float32 accumulation and a float32 result. Weights, gradients and optimizer state stay float32
// (the "master" copies); only the product inputs are rounded. Everything else (softmax, norms, the
// loss) is float32 anyway. On a backend without bfloat16 products (Backend::multiplies_bf16() false:
// the CPU) the switch has no effect, and matmul there stays float32.
#pragma once
#include "core/tensor.h"

namespace t6 {

bool bf16_matmul_enabled();

// The bfloat16 copy of a float32 matmul input. The last copy made is remembered with its source and
// handed out again while the source is the same, unchanged tensor (same storage, view and version):
// TPA's six factor projections and the MLP's two input projections all multiply one normalised x,
// which would otherwise be cast, and kept for backward, once per projection. The memory holds no
// reference to the source; guards forget it on exit.
Tensor bf16_copy(const Tensor& x);

// Sets the switch to `enabled` for a scope and restores the previous value on exit, so guards nest
// (an inner Bf16MatmulGuard(false) runs a sub-scope in float32).
// Leaving a guard forgets bf16_copy's remembered copy.
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
