// The per-step constants of AdamW (core/backend.h, Backend::adamw_step) with the bias corrections
// folded in, so that both backends' kernels run the same float32 arithmetic per element:
//   g = grad_scale·grad;  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
//   p ← p·decay − step_size·m / (√v·inv_sqrt_bias2 + eps)
// which is the spec's p − lr·wd·p − lr·(m / (1 − β1^t)) / (√(v / (1 − β2^t)) + eps). The constants
// are computed in double and rounded once; float32 arithmetic keeps every value within a few float32
// roundings of the double update, and the parameters and moments are stored in float32 anyway.
#pragma once
#include <cmath>

#include "core/backend.h"

namespace t6 {

struct AdamWConstants {
  float beta1, beta2, one_minus_beta1, one_minus_beta2, grad_scale, decay, step_size, inv_sqrt_bias2, eps;
};

inline AdamWConstants adamw_constants(const AdamWHyper& h) {
  const double step = static_cast<double>(h.step);
  const double bias1 = 1.0 - std::pow(h.beta1, step), bias2 = 1.0 - std::pow(h.beta2, step);
  return {static_cast<float>(h.beta1),
          static_cast<float>(h.beta2),
          static_cast<float>(1.0 - h.beta1),
          static_cast<float>(1.0 - h.beta2),
          static_cast<float>(h.grad_scale),
          static_cast<float>(1.0 - h.lr * h.weight_decay),
          static_cast<float>(h.lr / bias1),
          static_cast<float>(1.0 / std::sqrt(bias2)),
          static_cast<float>(h.eps)};
}

}  // namespace t6
