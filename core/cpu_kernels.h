// Internal to the CPU backend: every kernel as a plain loop over raw pointers (llm.c style), one
// template per kernel, instantiated for the element types it supports in the core/cpu_kernels_*.cpp
// and core/cpu_gemm.cpp files. core/cpu_backend.cpp turns Tensors into pointers and dtypes into
// template arguments; nothing outside the CPU backend includes this header.
//
// Unless a comment says otherwise, arrays are contiguous, an output may alias an input of the same
// shape (Tensor::scale_ runs `unary` in place), and no kernel throws: the backend validates first,
// since an exception must never escape an OpenMP region.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "core/backend.h"
#include "core/dtype.h"

namespace t6::cpu {

// Work sizes below which an OpenMP parallel region costs more than it saves on this machine
// (2 cores, where an empty fork/join costs ~0.5 µs). Measured by timing each loop serial and with
// `#pragma omp parallel for` at n = 2^10 … 2^22: a cheap map (z = x·y) breaks even near 12 Ki
// elements (8 Ki: 0.74 µs serial vs 0.95 µs parallel; 16 Ki: 1.54 vs 1.26; 128 Ki: 2.0× faster),
// a map that calls exp (~1.5 ns per element) near 3 Ki (4 Ki: 6.5 µs vs 5.6 µs; 64 Ki: 1.9×).
constexpr int64_t kParallelElements = 1 << 14;   // cheap arithmetic per element
constexpr int64_t kParallelExpensive = 1 << 11;  // exp, log, sqrt or a division per element

// bfloat16 as stored: the upper half of a float32 (core/dtype.h converts).
struct BF16 {
  uint16_t bits;
};

// The value conversions fill and cast share. Float → int32 truncates toward zero, saturates at the
// int32 range and maps NaN to 0 (what a GPU's float-to-int instruction does), so no input is UB.
template <class T>
inline T from_double(double v) {
  if constexpr (std::is_same_v<T, BF16>) {
    return BF16{float_to_bf16(static_cast<float>(v))};
  } else if constexpr (std::is_same_v<T, int32_t>) {
    if (!(v == v)) return 0;
    if (v >= 2147483647.0) return INT32_MAX;
    if (v <= -2147483648.0) return INT32_MIN;
    return static_cast<int32_t>(v);
  } else {
    return static_cast<T>(v);
  }
}

template <class T>
inline double to_double(T v) {
  if constexpr (std::is_same_v<T, BF16>) {
    return bf16_to_float(v.bits);
  } else {
    return static_cast<double>(v);
  }
}

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

// --- data movement (cpu_kernels_copy.cpp): T in {float, double, int32_t, BF16} ------------------
template <class T>
void fill(T* out, int64_t n, double value);
template <class From, class To>
void cast(const From* src, To* dst, int64_t n);
// dst[i] = src[i] for every multi-index of `shape`; strides in elements of `element_bytes` each.
void strided_copy(const void* src, const int64_t* src_strides, void* dst, const int64_t* dst_strides,
                  const int64_t* shape, int ndim, size_t element_bytes);

// --- elementwise (cpu_kernels_elementwise.cpp): T in {float, double} ------------------------------
template <class T>
void unary(UnaryOp op, const T* x, T* y, int64_t n, T alpha);
// x or y may be null when the derivative of `op` does not use it (unary_backward_needs says which).
template <class T>
void unary_backward(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, int64_t n, T alpha);
struct UnaryInputs {
  bool x, y;
};
UnaryInputs unary_backward_needs(UnaryOp op);
// out[i] = a[i % na] op b[i % nb]; needs n % na == n % nb == 0 and min(na, nb) dividing max(na, nb).
template <class T>
void binary(BinaryOp op, const T* a, int64_t na, const T* b, int64_t nb, T* out, int64_t n);
template <class T>
void axpy(T alpha, const T* x, T* y, int64_t n);

// --- reductions (cpu_kernels_reduce.cpp): T in {float, double}; sums accumulate in double ---------
template <class T>
void sum_axis(const T* x, T* y, int64_t outer, int64_t n, int64_t inner);
template <class T>
double sum_of_squares(const T* x, int64_t n);

// --- matrix multiply (cpu_gemm.cpp): T in {float, double}; pointers at the first batch item -------
template <class T>
void gemm(const Backend::Gemm& g, const T* a, const T* b, T* c);

// --- softmax family (cpu_kernels_softmax.cpp): T in {float, double}, rows of length n -------------
template <class T>
void softmax_forward(const T* x, T* y, int64_t rows, int64_t n, T scale, bool causal, int64_t tq);
template <class T>
void softmax_backward(const T* y, const T* gy, T* gx, int64_t rows, int64_t n, T scale);
template <class T>
void log_softmax_forward(const T* x, T* y, int64_t rows, int64_t n);
template <class T>
void log_softmax_backward(const T* y, const T* gy, T* gx, int64_t rows, int64_t n);
// Counts the targets that count (in [0, vocab)) and the ones out of range (neither that nor −1).
struct CrossEntropyCounts {
  int64_t counted = 0, out_of_range = 0;
};
template <class T>
CrossEntropyCounts cross_entropy_forward(const T* logits, const int32_t* targets, T* losses, T* lse, int64_t rows,
                                         int64_t vocab);
template <class T>
void cross_entropy_backward(const T* logits, const int32_t* targets, const T* lse, const T* grad_losses,
                            T* glogits, int64_t rows, int64_t vocab);

// --- other network kernels (cpu_kernels_nn.cpp): T in {float, double} -----------------------------
// ids are in [0, rows of weight); the backend checks before calling.
template <class T>
void embedding_forward(const T* weight, const int32_t* ids, T* out, int64_t n, int64_t dim);
template <class T>
void embedding_backward(const int32_t* ids, const T* gout, T* gweight, int64_t n, int64_t dim);

// buffer[b, slots[b], :] = values[b, :] for buffer [B, M, n] (Backend::scatter_rows)
template <class T>
void scatter_rows(const T* values, const int32_t* slots, T* buffer, int64_t rows, int64_t capacity, int64_t n);

// SwiGLU's gate, n elements (cpu_kernels_elementwise.cpp; Backend::swiglu_forward/backward).
template <class T>
void swiglu_forward(const T* gate, const T* up, T* out, int64_t n);
template <class T>
void swiglu_backward(const T* gate, const T* up, const T* gout, T* ggate, T* gup, int64_t n);

// TPA's per-token factor product (core/cpu_kernels_tpa_product.cpp; the shapes are in core/backend.h).
template <class T>
void tpa_product_forward(const Backend::TPAProduct& p, const T* a, const T* b, T* out);
template <class T>
void tpa_product_backward(const Backend::TPAProduct& p, const T* a, const T* b, const T* gout, T* ga, T* gb);

// Fused causal attention (core/cpu_kernels_flash_attention.cpp; the shapes are in core/backend.h).
template <class T>
void flash_attention_forward(const Backend::FlashAttention& p, const T* q, const T* k, const T* v, T* out, T* lse);
template <class T>
void flash_attention_backward(const Backend::FlashAttention& p, const T* q, const T* k, const T* v, const T* out,
                              const T* lse, const T* gout, T* gq, T* gk, T* gv);
template <class T>
void rms_norm_forward(const T* x, T* y, T* rstd, int64_t rows, int64_t d, double eps);
template <class T>
void rms_norm_backward(const T* x, const T* rstd, const T* gy, T* gx, int64_t rows, int64_t d);
// x, y [P, inner, dh], dh even.
template <class T>
void rope(const T* x, const int32_t* positions, T* y, int64_t P, int64_t inner, int64_t dh, bool inverse);

// --- optimizer (cpu_kernels_adamw.cpp): one parameter tensor of n float32 values ------------------
void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                const AdamWHyper& h);

}  // namespace t6::cpu
