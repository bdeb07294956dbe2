// RMSNorm without a weight (the spec's rmsnorm), forward and backward, over rows of length d, float32
// and float64 (the forward's y may be bfloat16 for float32 x): one row per loop iteration, its sums of
// squares and products accumulated in double.
#include <cmath>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"

namespace t6::cpu {

namespace {

template <class T, class Y>
void rms_norm_forward(const T* x, Y* y, T* rstd, int64_t rows, int64_t d, double eps) {
#pragma omp parallel for if (parallel : rows * d > kParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * d;
    Y* yr = y + r * d;
    const T s = static_cast<T>(1.0 / std::sqrt(dot_row(xr, xr, d) / static_cast<double>(d) + eps));
    rstd[r] = s;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) yr[j] = narrow<Y>(xr[j] * s);
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

}  // namespace

void CpuBackend::rms_norm_forward(const Tensor& x, Tensor& y, Tensor& rstd, double eps) {
  const auto timing = timer_.time("rms_norm_forward");
  const int64_t d = row_length(x), rows = row_count(x);
  expect("rms_norm_forward", {{"x", x}}, x.dtype(), x.numel());
  expect("rms_norm_forward", {{"y", y}}, y.dtype(), x.numel());
  expect("rms_norm_forward", {{"rstd", rstd}}, x.dtype(), rows);
  dispatch_float_output("rms_norm_forward", x.dtype(), y.dtype(), [&](auto t, auto out) {
    using T = decltype(t);
    cpu::rms_norm_forward(ptr<const T>(x), ptr<decltype(out)>(y), ptr<T>(rstd), rows, d, eps);
  });
}

void CpuBackend::rms_norm_backward(const Tensor& x, const Tensor& rstd, const Tensor& gy, Tensor& gx) {
  const auto timing = timer_.time("rms_norm_backward");
  const int64_t d = row_length(x), rows = row_count(x);
  expect("rms_norm_backward", {{"x", x}, {"gy", gy}, {"gx", gx}}, x.dtype(), x.numel());
  expect("rms_norm_backward", {{"rstd", rstd}}, x.dtype(), rows);
  dispatch_float("rms_norm_backward", x.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::rms_norm_backward(ptr<const T>(x), ptr<const T>(rstd), ptr<const T>(gy), ptr<T>(gx), rows, d);
  });
}

}  // namespace t6::cpu
