// Rotary position embedding (the spec's half-split RoPE, base 10000) and its inverse, float32 and
// float64, over x viewed [P, inner, dh]: each position's cos and sin are computed once and rotate its
// `inner` rows. y may alias x.
#include <cmath>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"

namespace t6::cpu {

namespace {

template <class T>
void rope(const T* x, const int32_t* positions, T* y, int64_t P, int64_t inner, int64_t dh, bool inverse) {
  const int64_t half = dh / 2;
  // θ_j(t) = t · 10000^(−2j/dh), in T's own precision (spec, RoPE)
  std::vector<T> freq(static_cast<size_t>(half));
  for (int64_t j = 0; j < half; ++j) freq[j] = std::pow(T(10000), -T(2 * j) / T(dh));
  const T sign = inverse ? T(-1) : T(1);
#pragma omp parallel for if (parallel : P * inner * dh > kParallelExpensive)
  for (int64_t p = 0; p < P; ++p) {
    const T t = static_cast<T>(positions[p]);
    const T* xp = x + p * inner * dh;
    T* yp = y + p * inner * dh;
    for (int64_t j = 0; j < half; ++j) {
      const T theta = t * freq[j];
      const T c = std::cos(theta), s = sign * std::sin(theta);
      for (int64_t row = 0; row < inner; ++row) {
        const T a = xp[row * dh + j], b = xp[row * dh + j + half];
        yp[row * dh + j] = a * c + b * s;
        yp[row * dh + j + half] = -a * s + b * c;
      }
    }
  }
}

}  // namespace

void CpuBackend::rope(const Tensor& x, const Tensor& positions, Tensor& y, int64_t inner, bool inverse) {
  const auto timing = timer_.time("rope");
  const int64_t dh = row_length(x), P = positions.numel();
  expect("rope", {{"positions", positions}}, DType::I32);
  expect("rope", {{"x", x}, {"y", y}}, x.dtype(), P * inner * dh);
  T6_CHECK(dh % 2 == 0, "cpu rope: head dimension ", dh, " must be even (RoPE rotates its two halves)");
  dispatch_float("rope", x.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::rope(ptr<const T>(x), ptr<const int32_t>(positions), ptr<T>(y), P, inner, dh, inverse);
  });
}

}  // namespace t6::cpu
