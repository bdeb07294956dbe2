// AdamW over every parameter tensor (spec: decoupled weight decay, then the Adam step with bias
// correction), float32 parameters and state, float32 arithmetic with the per-step constants of
// core/adamw_constants.h (the CUDA twin computes the same). One OpenMP team walks every tensor, each
// thread taking its static share of each one without waiting for the others in between.
#include <cmath>

#include "core/adamw_constants.h"
#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"

namespace t6::cpu {

void CpuBackend::adamw_step(std::vector<AdamWSlot>& slots, const AdamWHyper& h) {
  const auto timing = timer_.time("adamw_step");
  T6_CHECK(h.step >= 1, "cpu adamw_step: step ", h.step, " must count from 1 (bias correction divides by 1 − β^step)");
  int64_t total = 0;
  for (AdamWSlot& s : slots) {
    expect("adamw_step", {{"param", s.param}}, DType::F32);
    expect("adamw_step", {{"grad", s.grad}, {"exp_avg", s.exp_avg}, {"exp_avg_sq", s.exp_avg_sq}}, DType::F32,
           s.param.numel());
    total += s.param.numel();
  }
  const AdamWConstants k = adamw_constants(h);
#pragma omp parallel if (parallel : total > kParallelElements)
  for (AdamWSlot& s : slots) {
    float* param = ptr<float>(s.param);
    const float* grad = ptr<const float>(s.grad);
    float* exp_avg = ptr<float>(s.exp_avg);
    float* exp_avg_sq = ptr<float>(s.exp_avg_sq);
#pragma omp for simd schedule(static) nowait
    for (int64_t i = 0; i < s.param.numel(); ++i) {
      const float g = grad[i] * k.grad_scale;
      const float m = k.beta1 * exp_avg[i] + k.one_minus_beta1 * g;
      const float v = k.beta2 * exp_avg_sq[i] + k.one_minus_beta2 * g * g;
      exp_avg[i] = m;
      exp_avg_sq[i] = v;
      param[i] = param[i] * k.decay - k.step_size * m / (std::sqrt(v) * k.inv_sqrt_bias2 + k.eps);
    }
  }
}

}  // namespace t6::cpu
