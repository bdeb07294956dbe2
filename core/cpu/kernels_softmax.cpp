// The softmax family over rows: softmax (with scale and the causal mask of attention) and
// log_softmax, forward and backward, float32 and float64; one row per loop iteration. Every row
// subtracts its maximum before exponentiating, and sums in double. An output may alias its input.
#include <algorithm>
#include <cmath>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"

namespace t6::cpu {

namespace {

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
      const T e = exp_fast(scale * xr[j] - m);
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
    for (int64_t j = 0; j < n; ++j) out[j] = gr[j] - exp_fast(yr[j]) * total;
  }
}

}  // namespace

void CpuBackend::softmax_forward(const Tensor& x, Tensor& y, double scale, bool causal, int64_t tq) {
  const auto timing = timer_.time("softmax_forward");
  expect("softmax_forward", {{"x", x}, {"y", y}}, x.dtype(), x.numel());
  const int64_t n = row_length(x), rows = row_count(x);
  T6_CHECK(!causal || (tq > 0 && rows % tq == 0), "cpu softmax_forward: causal mask with tq = ", tq,
           " does not divide the ", rows, " rows");
  dispatch_float("softmax_forward", x.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::softmax_forward(ptr<const T>(x), ptr<T>(y), rows, n, static_cast<T>(scale), causal, tq);
  });
}

void CpuBackend::softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, double scale) {
  const auto timing = timer_.time("softmax_backward");
  expect("softmax_backward", {{"y", y}, {"gy", gy}, {"gx", gx}}, y.dtype(), y.numel());
  dispatch_float("softmax_backward", y.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::softmax_backward(ptr<const T>(y), ptr<const T>(gy), ptr<T>(gx), row_count(y), row_length(y),
                          static_cast<T>(scale));
  });
}

void CpuBackend::log_softmax_forward(const Tensor& x, Tensor& y) {
  const auto timing = timer_.time("log_softmax_forward");
  expect("log_softmax_forward", {{"x", x}, {"y", y}}, x.dtype(), x.numel());
  dispatch_float("log_softmax_forward", x.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::log_softmax_forward(ptr<const T>(x), ptr<T>(y), row_count(x), row_length(x));
  });
}

void CpuBackend::log_softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx) {
  const auto timing = timer_.time("log_softmax_backward");
  expect("log_softmax_backward", {{"y", y}, {"gy", gy}, {"gx", gx}}, y.dtype(), y.numel());
  dispatch_float("log_softmax_backward", y.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::log_softmax_backward(ptr<const T>(y), ptr<const T>(gy), ptr<T>(gx), row_count(y), row_length(y));
  });
}

}  // namespace t6::cpu
