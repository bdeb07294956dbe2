// CPU kernels for the remaining network layers: embedding lookup and its scatter-add gradient,
// RMS normalisation, and rotary position embedding (RoPE).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/cpu_kernels.h"

namespace t6::cpu {

template <class T>
void embedding_forward(const T* weight, const int32_t* ids, T* out, int64_t n, int64_t dim) {
  const size_t row_bytes = static_cast<size_t>(dim) * sizeof(T);
#pragma omp parallel for if (parallel : n * dim > kParallelElements)
  for (int64_t i = 0; i < n; ++i) std::memcpy(out + i * dim, weight + static_cast<int64_t>(ids[i]) * dim, row_bytes);
}

template <class T>
void embedding_backward(const int32_t* ids, const T* gout, T* gweight, int64_t n, int64_t dim) {
  // Repeated ids add into the same row, so threads split the columns, not the ids: each thread owns
  // whole cache lines of every row and walks all ids in order (race-free and deterministic).
  const int64_t line = 64 / static_cast<int64_t>(sizeof(T));
  const int64_t lines = (dim + line - 1) / line;
#pragma omp parallel if (parallel : n * dim > kParallelElements)
  {
    const int64_t t = omp_get_thread_num(), team = omp_get_num_threads();
    const int64_t c0 = std::min(dim, lines * t / team * line), c1 = std::min(dim, lines * (t + 1) / team * line);
    for (int64_t i = 0; i < n; ++i) {
      const T* g = gout + i * dim;
      T* w = gweight + static_cast<int64_t>(ids[i]) * dim;
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) w[c] += g[c];
    }
  }
}

template <class T>
void rms_norm_forward(const T* x, T* y, T* rstd, int64_t rows, int64_t d, double eps) {
#pragma omp parallel for if (parallel : rows * d > kParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * d;
    T* yr = y + r * d;
    const T s = static_cast<T>(1.0 / std::sqrt(dot_row(xr, xr, d) / static_cast<double>(d) + eps));
    rstd[r] = s;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) yr[j] = xr[j] * s;
  }
}

template <class T>
void rms_norm_backward(const T* x, const T* rstd, const T* gy, T* gx, int64_t rows, int64_t d) {
#pragma omp parallel for if (parallel : rows * d > kParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * d;
    const T* gr = gy + r * d;
    T* out = gx + r * d;
    const double s = static_cast<double>(rstd[r]);
    // gx = s·(gy − x · s²·mean(gy ⊙ x))
    const T c = static_cast<T>(s * s * dot_row(gr, xr, d) / static_cast<double>(d));
    const T st = static_cast<T>(s);
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) out[j] = st * (gr[j] - xr[j] * c);
  }
}

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

template <class T>
void scatter_rows(const T* values, const int32_t* slots, T* buffer, int64_t rows, int64_t capacity, int64_t n) {
  for (int64_t b = 0; b < rows; ++b)
    std::memcpy(buffer + (b * capacity + slots[b]) * n, values + b * n, static_cast<size_t>(n) * sizeof(T));
}

#define T6_CPU_INSTANTIATE(T)                                                                 \
  template void scatter_rows<T>(const T*, const int32_t*, T*, int64_t, int64_t, int64_t);     \
  template void embedding_forward<T>(const T*, const int32_t*, T*, int64_t, int64_t);         \
  template void embedding_backward<T>(const int32_t*, const T*, T*, int64_t, int64_t);        \
  template void rms_norm_forward<T>(const T*, T*, T*, int64_t, int64_t, double);              \
  template void rms_norm_backward<T>(const T*, const T*, const T*, T*, int64_t, int64_t);     \
  template void rope<T>(const T*, const int32_t*, T*, int64_t, int64_t, int64_t, bool);
T6_CPU_INSTANTIATE(float)
T6_CPU_INSTANTIATE(double)
#undef T6_CPU_INSTANTIATE

}  // namespace t6::cpu
