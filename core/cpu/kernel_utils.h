// Helpers shared by the CPU kernel files (the twin of cuda/kernel_utils.cuh): typed pointers, the
// operand checks that turn a caller's mistake into an Error before any loop runs, the dtype dispatch,
// the OpenMP work thresholds, and the row reductions (sums in double, max, logsumexp) of the row
// kernels.
//
// Unless a comment says otherwise, the loop kernels take contiguous arrays, an output may alias an
// input of the same shape (Tensor::scale_ runs `unary` in place), and no loop kernel throws: the
// CpuBackend method validates first, since an exception must never escape an OpenMP region.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <type_traits>

#include "core/tensor.h"

namespace t6::cpu {

// Work sizes below which an OpenMP parallel region costs more than it saves: the break-even points
// of each kind of loop timed serial and parallel on 2 cores (docs/PERF.md, "Thresholds in the CPU
// kernels").
constexpr int64_t kParallelElements = 1 << 14;   // cheap arithmetic per element
constexpr int64_t kParallelExpensive = 1 << 11;  // exp, log, sqrt or a division per element

template <class T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

[[noreturn]] inline void unsupported(const char* kernel, DType dtype, const char* supported) {
  throw Error(cat("cpu ", kernel, ": dtype ", dtype_name(dtype), " is not supported on the CPU (", supported, ")"));
}

// Calls f(T{}) with T the element type of a float32 or float64 tensor.
template <class F>
void dispatch_float(const char* kernel, DType dtype, F&& f) {
  switch (dtype) {
    case DType::F32: return f(float{});
    case DType::F64: return f(double{});
    default: unsupported(kernel, dtype, "float32 and float64 are");
  }
}

// A float kernel whose output may also be bfloat16 for float32 inputs (mixed precision's product
// inputs, core/backend.h): f(T{}, Out{}) with T the inputs' element type and Out the output's, T itself
// or uint16_t, the bits of a bfloat16 that narrow() writes.
template <class F>
void dispatch_float_output(const char* kernel, DType in, DType out, F&& f) {
  if (in == DType::F32 && out == DType::BF16) return f(float{}, uint16_t{});
  T6_CHECK(out == in, "cpu ", kernel, ": the output is ", dtype_name(out), " for ", dtype_name(in),
           " inputs; it must be ", dtype_name(in), " (or bfloat16 for float32 inputs)");
  dispatch_float(kernel, in, [&](auto t) { f(t, t); });
}

// A computed value in the output's element type; bfloat16 rounds to nearest even, as the cast does.
template <class Out, class T>
Out narrow(T value) {
  if constexpr (std::is_same_v<Out, uint16_t>) {
    return float_to_bf16(static_cast<float>(value));
  } else {
    return static_cast<Out>(value);
  }
}

// The kernel contract of core/backend.h, checked once per call so that a caller's mistake is an Error
// instead of a read past the end of a buffer: every operand defined, on the CPU, contiguous, of the
// expected dtype and (where the kernel needs it) element count.
struct Operand {
  const char* name;
  const Tensor& tensor;
};

inline void expect(const char* kernel, std::initializer_list<Operand> operands, DType dtype, int64_t numel = -1) {
  for (const Operand& o : operands) {
    T6_CHECK(o.tensor.defined(), "cpu ", kernel, ": ", o.name, " is an undefined tensor");
    T6_CHECK(o.tensor.device() == Device::CPU, "cpu ", kernel, ": ", o.name, " is on ",
             device_name(o.tensor.device()), "; every operand must be on the CPU");
    T6_CHECK(o.tensor.is_contiguous(), "cpu ", kernel, ": ", o.name, " of shape ", shape_str(o.tensor.shape()),
             " is not contiguous; pass contiguous_data()");
    T6_CHECK(o.tensor.dtype() == dtype, "cpu ", kernel, ": ", o.name, " is ", dtype_name(o.tensor.dtype()),
             ", expected ", dtype_name(dtype));
    T6_CHECK(numel < 0 || o.tensor.numel() == numel, "cpu ", kernel, ": ", o.name, " of shape ",
             shape_str(o.tensor.shape()), " has ", o.tensor.numel(), " elements, expected ", numel);
  }
}

// e^x for the hot loops. float32: Cephes' degree-6 polynomial of e^r on [−ln2/2, ln2/2] times 2^n put
// into the exponent bits (within 1e-7 relative of e^x; checked against exp for all 2^32 inputs), which
// GCC vectorises inside `omp simd` loops, where std::exp stays one library call per element, and e^x is
// most of the work of the SwiGLU, softmax and cross-entropy kernels.
// Results below e^−86 (at the subnormal range) are 0. The edge cases (|x| > 100, ±inf, NaN) are chosen
// with integer masks, not float comparisons: under GCC's default -ftrapping-math a float comparison
// keeps the loop scalar. float64 keeps std::exp.
template <class T>
inline T exp_fast(T x) {
  if constexpr (!std::is_same_v<T, float>) {
    return std::exp(x);
  } else {
    const int32_t xbits = std::bit_cast<int32_t>(x), magnitude = xbits & 0x7fffffff, negative = xbits >> 31;
    const int32_t big = -static_cast<int32_t>(magnitude > 0x42c80000);  // |x| > 100: e^x is 0 or inf
    const float xs = std::bit_cast<float>(xbits & ~big);  // 0 there, keeping the integers below in range
    const float shifter = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer, kept in the low bits
    const float t = xs * 1.44269504088896341f + shifter;
    const float n = t - shifter;  // round(x / ln2)
    const int32_t ni = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(shifter);
    const float r = (xs - n * 0.693359375f) - n * -2.12194440e-4f;  // x − n·ln2, ln2 in two parts
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    // 2^n as 2^(n−1)·2, so that n = 128 (e^x up to the largest float) still has an exponent field.
    int32_t bits = std::bit_cast<int32_t>(p * std::bit_cast<float>((ni + 126) << 23) * 2.0f);
    const int32_t zero = -static_cast<int32_t>(ni < -125) | (big & negative);
    const int32_t inf = -static_cast<int32_t>(ni > 128) | (big & ~negative);
    const int32_t nan = -static_cast<int32_t>(magnitude > 0x7f800000);
    bits = (bits & ~zero & ~inf) | (0x7f800000 & inf);
    return std::bit_cast<float>((bits & ~nan) | (xbits & nan));
  }
}

// The length of the rows a row kernel works on: the last axis.
inline int64_t row_length(const Tensor& t) { return t.ndim() == 0 ? 1 : t.shape().back(); }
inline int64_t row_count(const Tensor& t) { return row_length(t) == 0 ? 0 : t.numel() / row_length(t); }

// Σ x[i] and Σ x[i]·y[i], accumulated in double (vectorised): float32 rows of any length lose no
// accuracy to the sum, so results round once, at the end.
template <class T>
inline double sum_row(const T* x, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]);
  return s;
}

template <class T>
inline double dot_row(const T* x, const T* y, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * static_cast<double>(y[i]);
  return s;
}

// max_j scale·x[j] (−inf for an empty row), and log Σ_j exp(x[j]) in double with the maximum subtracted
// first: the softmax family and cross-entropy.
template <class T>
inline T row_max(const T* x, int64_t n, T scale) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < n; ++j) m = scale * x[j] > m ? scale * x[j] : m;
  return m;
}

template <class T>
inline double logsumexp(const T* x, int64_t n) {
  const T m = row_max(x, n, T(1));
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) sum += static_cast<double>(exp_fast(x[j] - m));
  return static_cast<double>(m) + std::log(sum);
}

}  // namespace t6::cpu
