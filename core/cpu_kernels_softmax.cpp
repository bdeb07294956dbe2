// CPU softmax family, one row per loop iteration: softmax (optionally causal), log-softmax, and the
// fused cross-entropy. Every row subtracts its maximum before exponentiating, and sums in double.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/cpu_kernels.h"

namespace t6::cpu {

namespace {

template <class T>
T row_max(const T* x, int64_t n, T scale) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < n; ++j) m = scale * x[j] > m ? scale * x[j] : m;
  return m;
}

// log Σ_j exp(x[j]), in double
template <class T>
double logsumexp(const T* x, int64_t n) {
  const T m = row_max(x, n, T(1));
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) sum += static_cast<double>(std::exp(x[j] - m));
  return static_cast<double>(m) + std::log(sum);
}

}  // namespace

template <class T>
void softmax_forward(const T* x, T* y, int64_t rows, int64_t n, T scale, bool causal, int64_t tq) {
  const int64_t shift = n - tq;  // query i of a [tq, n] block sees keys j <= i + shift
#pragma omp parallel for if (parallel : rows * n > kParallelExpensive)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    const int64_t valid = causal ? std::min(n, std::max<int64_t>(0, r % tq + shift + 1)) : n;
    const T m = row_max(xr, valid, scale);
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < valid; ++j) {
      const T e = std::exp(scale * xr[j] - m);
      yr[j] = e;
      sum += static_cast<double>(e);
    }
    const T inv = static_cast<T>(1.0 / sum);
#pragma omp simd
    for (int64_t j = 0; j < valid; ++j) yr[j] *= inv;
    for (int64_t j = valid; j < n; ++j) yr[j] = T(0);  // masked: exactly 0, and a fully masked row is all 0
  }
}

template <class T>
void softmax_backward(const T* y, const T* gy, T* gx, int64_t rows, int64_t n, T scale) {
#pragma omp parallel for if (parallel : rows * n > kParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    const T* yr = y + r * n;
    const T* gr = gy + r * n;
    T* out = gx + r * n;
    const T dot = static_cast<T>(dot_row(gr, yr, n));
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) out[j] = scale * yr[j] * (gr[j] - dot);
  }
}

template <class T>
void log_softmax_forward(const T* x, T* y, int64_t rows, int64_t n) {
#pragma omp parallel for if (parallel : rows * n > kParallelExpensive)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    const double lse = logsumexp(xr, n);
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) yr[j] = static_cast<T>(static_cast<double>(xr[j]) - lse);
  }
}

template <class T>
void log_softmax_backward(const T* y, const T* gy, T* gx, int64_t rows, int64_t n) {
#pragma omp parallel for if (parallel : rows * n > kParallelExpensive)
  for (int64_t r = 0; r < rows; ++r) {
    const T* yr = y + r * n;
    const T* gr = gy + r * n;
    T* out = gx + r * n;
    const T total = static_cast<T>(sum_row(gr, n));
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) out[j] = gr[j] - std::exp(yr[j]) * total;
  }
}

template <class T>
CrossEntropyCounts cross_entropy_forward(const T* logits, const int32_t* targets, T* losses, T* lse, int64_t rows,
                                         int64_t vocab) {
  int64_t counted = 0, out_of_range = 0;
#pragma omp parallel for reduction(+ : counted, out_of_range) if (parallel : rows * vocab > kParallelExpensive)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = logits + r * vocab;
    const double l = logsumexp(xr, vocab);
    const int32_t t = targets[r];
    lse[r] = static_cast<T>(l);
    if (t >= 0 && t < vocab) {
      losses[r] = static_cast<T>(l - static_cast<double>(xr[t]));
      ++counted;
    } else {  // ignored (−1) or out of range: no loss; the caller reports the out-of-range count
      losses[r] = T(0);
      out_of_range += t != -1;
    }
  }
  return {counted, out_of_range};
}

template <class T>
void cross_entropy_backward(const T* logits, const int32_t* targets, const T* lse, const T* grad_losses,
                            T* glogits, int64_t rows, int64_t vocab) {
#pragma omp parallel for if (parallel : rows * vocab > kParallelExpensive)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = logits + r * vocab;
    T* out = glogits + r * vocab;
    const int32_t t = targets[r];
    if (t < 0 || t >= vocab) {
#pragma omp simd
      for (int64_t j = 0; j < vocab; ++j) out[j] = T(0);
      continue;
    }
    const T g = grad_losses[r], l = lse[r];
#pragma omp simd
    for (int64_t j = 0; j < vocab; ++j) out[j] = g * std::exp(xr[j] - l);
    out[t] -= g;
  }
}

#define T6_CPU_INSTANTIATE(T)                                                                              \
  template void softmax_forward<T>(const T*, T*, int64_t, int64_t, T, bool, int64_t);                      \
  template void softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, T);                          \
  template void log_softmax_forward<T>(const T*, T*, int64_t, int64_t);                                    \
  template void log_softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t);                         \
  template CrossEntropyCounts cross_entropy_forward<T>(const T*, const int32_t*, T*, T*, int64_t, int64_t); \
  template void cross_entropy_backward<T>(const T*, const int32_t*, const T*, const T*, T*, int64_t, int64_t);
T6_CPU_INSTANTIATE(float)
T6_CPU_INSTANTIATE(double)
#undef T6_CPU_INSTANTIATE

}  // namespace t6::cpu
