// AdamW over every parameter tensor, one after the other (spec: decoupled weight decay, then the Adam
// step with bias correction), float32 parameters and state. Per-element arithmetic runs in double;
// only the stored state is float32.
#include <cmath>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"

namespace t6::cpu {

namespace {

// One parameter tensor of n values.
void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                const AdamWHyper& h) {
  const double step = static_cast<double>(h.step);
  const double bias1 = 1.0 - std::pow(h.beta1, step), bias2 = 1.0 - std::pow(h.beta2, step);
  const double decay = 1.0 - h.lr * h.weight_decay;
  const double b1 = h.beta1, b2 = h.beta2, lr = h.lr, eps = h.eps, scale = h.grad_scale;
#pragma omp parallel for simd if (parallel : n > kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(grad[i]) * scale;
    const double m = b1 * exp_avg[i] + (1.0 - b1) * g;
    const double v = b2 * exp_avg_sq[i] + (1.0 - b2) * g * g;
    exp_avg[i] = static_cast<float>(m);
    exp_avg_sq[i] = static_cast<float>(v);
    const double p = param[i] * decay;  // p ← p − lr·wd·p
    param[i] = static_cast<float>(p - lr * (m / bias1) / (std::sqrt(v / bias2) + eps));
  }
}

}  // namespace

void CpuBackend::adamw_step(std::vector<AdamWSlot>& slots, const AdamWHyper& h) {
  const auto timing = timer_.time("adamw_step");
  T6_CHECK(h.step >= 1, "cpu adamw_step: step ", h.step, " must count from 1 (bias correction divides by 1 − β^step)");
  for (AdamWSlot& s : slots) {
    expect("adamw_step", {{"param", s.param}}, DType::F32);
    expect("adamw_step", {{"grad", s.grad}, {"exp_avg", s.exp_avg}, {"exp_avg_sq", s.exp_avg_sq}}, DType::F32,
           s.param.numel());
  }
  for (AdamWSlot& s : slots)
    cpu::adamw_step(ptr<float>(s.param), ptr<const float>(s.grad), ptr<float>(s.exp_avg), ptr<float>(s.exp_avg_sq),
                    s.param.numel(), h);
}

}  // namespace t6::cpu
