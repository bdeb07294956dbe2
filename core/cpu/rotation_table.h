// The spec's RoPE tables for the CPU kernels (core/cpu/kernels_rope.cpp, core/cpu/kernels_decode.cpp).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/cpu/kernel_utils.h"

namespace t6::cpu {

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

// y = the row x of length 2·half rotated by a table row c (cos, then sign·sin); y may alias x.
template <class T>
inline void rotate_row(const T* x, T* y, const T* c, int64_t half) {
  const T* s = c + half;
#pragma omp simd
  for (int64_t j = 0; j < half; ++j) {
    const T a = x[j], b = x[j + half];
    y[j] = a * c[j] + b * s[j];
    y[j + half] = -a * s[j] + b * c[j];
  }
}

}  // namespace t6::cpu
