// Rotary position embedding (the spec's half-split RoPE, base 10000) and its inverse, float32 and
// float64, over x viewed [P, inner, dh]: the cos and sin of each distinct position are computed once
// (a table) and rotate its `inner` rows, a vectorised loop over each row's halves. y may alias x.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"

namespace t6::cpu {

namespace {

// cos θ_j(t) and sign·sin θ_j(t) of every row's position: a row is [cos_0 … cos_{half−1}, sin_0 …].
// When the positions are all in [0, P) (those of a batch repeat the same few), one row per position
// value, each computed once; else one row per entry of `positions`. θ_j(t) = t · 10000^(−2j/dh), in
// T's own precision (spec, RoPE).
template <class T>
struct RotationTable {
  std::vector<T> rows;
  bool by_value;  // rows indexed by position value, else by index into positions

  RotationTable(const int32_t* positions, int64_t P, int64_t dh, T sign) {
    const int64_t half = dh / 2;
    const auto [lo, hi] = std::minmax_element(positions, positions + P);
    by_value = P > 0 && *lo >= 0 && *hi < P;
    const int64_t count = by_value ? int64_t{*hi} + 1 : P;
    std::vector<T> freq(static_cast<size_t>(half));
    for (int64_t j = 0; j < half; ++j) freq[j] = std::pow(T(10000), -T(2 * j) / T(dh));
    rows.resize(static_cast<size_t>(count * dh));
#pragma omp parallel for if (parallel : count * half > kParallelExpensive)
    for (int64_t r = 0; r < count; ++r) {
      const T t = static_cast<T>(by_value ? r : positions[r]);
      for (int64_t j = 0; j < half; ++j) {
        rows[r * dh + j] = std::cos(t * freq[j]);
        rows[r * dh + half + j] = sign * std::sin(t * freq[j]);
      }
    }
  }
  const T* row(const int32_t* positions, int64_t p, int64_t dh) const {
    return rows.data() + (by_value ? int64_t{positions[p]} : p) * dh;
  }
};

template <class T>
void rope(const T* x, const int32_t* positions, T* y, int64_t P, int64_t inner, int64_t dh, bool inverse) {
  const int64_t half = dh / 2;
  const RotationTable<T> table(positions, P, dh, inverse ? T(-1) : T(1));
#pragma omp parallel for if (parallel : P * inner * dh > kParallelElements)
  for (int64_t p = 0; p < P; ++p) {
    const T* c = table.row(positions, p, dh);
    const T* s = c + half;
    for (int64_t row = 0; row < inner; ++row) {
      const T* xr = x + (p * inner + row) * dh;
      T* yr = y + (p * inner + row) * dh;
#pragma omp simd
      for (int64_t j = 0; j < half; ++j) {
        const T a = xr[j], b = xr[j + half];
        yr[j] = a * c[j] + b * s[j];
        yr[j + half] = -a * s[j] + b * c[j];
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
