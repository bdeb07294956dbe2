// Rotary position embedding (the spec's half-split RoPE, base 10000) and its inverse, float32.
//
// θ_j(t) = t · 10000^(−2j/dh) is computed in float32 like the CPU twin, with the frequencies of
// rope_frequencies (cuda/kernel_utils.cuh). What remains between the backends is sincosf versus the
// host's sinf/cosf (an ulp or two of the result).
#include <cmath>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_utils.cuh"

namespace t6 {

namespace kernels {

// rope: for each row of length dh of x viewed [P, inner, dh] at position t = positions[p], and
// j < dh/2: y[j] = x[j]·cos θ + x[j+dh/2]·sin θ, y[j+dh/2] = −x[j]·sin θ + x[j+dh/2]·cos θ, with θ
// negated when inverse (core/backend.h, spec RoPE). One thread per (p, j); it reuses its cos/sin for
// the `inner` rows of position p. y may alias x.
__global__ void rope(const float* x, const int32_t* positions, float* y, int64_t P, int64_t inner, int64_t dh,
                     float sign, RopeFrequencies freq) {
  const int64_t half = dh / 2;
  for (int64_t g = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; g < P * half; g += int64_t{gridDim.x} * blockDim.x) {
    const int64_t p = g / half, j = g % half;
    const float theta = static_cast<float>(positions[p]) * freq.inv[j];
    float s, c;
    sincosf(theta, &s, &c);
    s *= sign;
    for (int64_t row = 0; row < inner; ++row) {
      const int64_t base = (p * inner + row) * dh;
      const float a = x[base + j], b = x[base + j + half];
      y[base + j] = a * c + b * s;
      y[base + j + half] = -a * s + b * c;
    }
  }
}

}  // namespace kernels

void CudaBackend::rope(const Tensor& x, const Tensor& positions, Tensor& y, int64_t inner, bool inverse) {
  const auto timing = timer_.time("rope");
  require_dtype("rope", x, DType::F32);
  require_dtype("rope (positions)", positions, DType::I32);
  const int64_t P = positions.numel();
  if (x.numel() == 0 || P == 0) return;
  const int64_t dh = x.numel() / (P * inner), half = dh / 2;
  const RopeFrequencies freq = rope_frequencies("rope", dh);
  kernels::rope<<<grid_for(P * half), kThreads, 0, stream_>>>(
      device_ptr<const float>(x), device_ptr<const int32_t>(positions), device_ptr<float>(y), P, inner, dh,
      inverse ? -1.f : 1.f, freq);
  T6_CUDA_CHECK_LAUNCH(rope);
}

}  // namespace t6
