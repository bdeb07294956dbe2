// Batched matrix multiply over OpenBLAS, float32 and float64. OpenBLAS runs single-threaded
// (core/cpu/threads.cpp sets it) and this file parallelises with OpenMP instead: over the batch, and
// over row (or column) bands of C when there are fewer matrices than threads. Then one OpenMP team
// runs every CPU kernel, with no BLAS thread pool spinning against it for the cores, and a batch of
// small matrices (attention scores) runs one whole matrix per thread instead of splitting each one;
// docs/PERF.md has the measurements.
//
// The tiniest products skip BLAS: a call's fixed cost is larger than their arithmetic, and a plain
// loop kernel parallelised over the batch is faster.
#include <omp.h>

#include <algorithm>
#include <climits>
#include <string>

#include "core/cpu/blas.h"
#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"

namespace t6::cpu {

namespace {

// Per-matrix work m·n·k up to which the loop kernel beats a single-threaded BLAS call per matrix (the
// break-even point, docs/PERF.md), for op(B) = B (its only form; with Bᵀ it would need strided dot
// products, slower than BLAS).
constexpr int64_t kLoopKernelWork = 2048;
// Up to this total work (batch·m·n·k multiply-adds) one thread does the whole product: below it a
// second thread saves less than the fork/join costs (docs/PERF.md).
constexpr int64_t kParallelGemmWork = 1 << 15;
// A split of one matrix across threads keeps blocks at least this many rows (or columns) wide, so
// each BLAS call still runs its packed micro-kernels at full speed.
constexpr int64_t kMinSplit = 32;

// C = alpha·op(A)·B + beta·C for one small matrix, row-major: C's row i accumulates
// alpha·op(A)(i,p)·B(p,:), vectorised over the row. beta = 0 never reads C, as BLAS does.
template <class T>
void loop_gemm(const Backend::Gemm& g, const T* A, const T* B, T* C) {
  const T alpha = static_cast<T>(g.alpha), beta = static_cast<T>(g.beta);
  for (int64_t i = 0; i < g.m; ++i) {
    T* c = C + i * g.ldc;
    if (beta == T(0)) {
      for (int64_t j = 0; j < g.n; ++j) c[j] = T(0);
    } else {
#pragma omp simd
      for (int64_t j = 0; j < g.n; ++j) c[j] *= beta;
    }
    for (int64_t p = 0; p < g.k; ++p) {
      const T s = alpha * (g.trans_a ? A[p * g.lda + i] : A[i * g.lda + p]);
      const T* b = B + p * g.ldb;
#pragma omp simd
      for (int64_t j = 0; j < g.n; ++j) c[j] += s * b[j];
    }
  }
}

template <class T>
void blas_gemm(const Backend::Gemm& g, const T* a, const T* b, T* c) {
  const T alpha = static_cast<T>(g.alpha);
  if (g.m == 1 && g.beta == 0.0) {
    // A one-row product (a decode step) is a matrix-vector product: gemv reads op(B) once, without
    // the packing copy gemm makes, which costs as much as the arithmetic at this size.
    // The row a's elements sit lda apart when A is transposed.
    const int inc_a = g.trans_a ? static_cast<int>(g.lda) : 1;
    std::fill(c, c + g.n, T(0));  // with beta = 0 some OpenBLAS versions still scale (0·NaN) what c held
    if (g.trans_b) {  // B stored (n × k): c = B · a
      blas_gemv_call(CblasNoTrans, static_cast<int>(g.n), static_cast<int>(g.k), alpha, b, static_cast<int>(g.ldb), a,
                     inc_a, c);
    } else {  // B stored (k × n): c = Bᵀ · a
      blas_gemv_call(CblasTrans, static_cast<int>(g.k), static_cast<int>(g.n), alpha, b, static_cast<int>(g.ldb), a,
                     inc_a, c);
    }
    return;
  }
  blas_gemm_call(g.trans_a ? CblasTrans : CblasNoTrans, g.trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(g.m),
                 static_cast<int>(g.n), static_cast<int>(g.k), alpha, a, static_cast<int>(g.lda), b,
                 static_cast<int>(g.ldb), static_cast<T>(g.beta), c, static_cast<int>(g.ldc));
}

// Block `part` of `parts` of one matrix product: a band of C's rows (op(A)'s rows) when C is taller
// than wide, else a band of its columns (op(B)'s columns).
template <class T>
void blas_block(const Backend::Gemm& g, const T* a, const T* b, T* c, int64_t part, int64_t parts) {
  Backend::Gemm block = g;
  if (g.m >= g.n) {
    const int64_t r0 = g.m * part / parts, r1 = g.m * (part + 1) / parts;
    block.m = r1 - r0;
    a += g.trans_a ? r0 : r0 * g.lda;
    c += r0 * g.ldc;
  } else {
    const int64_t c0 = g.n * part / parts, c1 = g.n * (part + 1) / parts;
    block.n = c1 - c0;
    b += g.trans_b ? c0 * g.ldb : c0;
    c += c0;
  }
  blas_gemm(block, a, b, c);
}

template <class T>
void gemm(const Backend::Gemm& g, const T* a, const T* b, T* c) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  const int64_t work = g.batch * g.m * g.n * std::max<int64_t>(g.k, 1);
  if (!g.trans_b && g.m * g.n * g.k <= kLoopKernelWork) {
#pragma omp parallel for if (parallel : work > kParallelGemmWork)
    for (int64_t i = 0; i < g.batch; ++i) loop_gemm(g, a + i * g.stride_a, b + i * g.stride_b, c + i * g.stride_c);
    return;
  }
  // Every matrix is cut into `parts` bands so that there are at least as many tasks as threads.
  const int64_t threads = work > kParallelGemmWork ? omp_get_max_threads() : 1;
  const int64_t widest_split = std::max<int64_t>(1, std::max(g.m, g.n) / kMinSplit);
  const int64_t parts = std::clamp<int64_t>((threads + g.batch - 1) / g.batch, 1, widest_split);
#pragma omp parallel for if (parallel : threads > 1)
  for (int64_t task = 0; task < g.batch * parts; ++task) {
    const int64_t i = task / parts;
    blas_block(g, a + i * g.stride_a, b + i * g.stride_b, c + i * g.stride_c, task % parts, parts);
  }
}

// The highest element index one operand of a batched gemm reaches must lie inside its tensor.
void check_gemm_operand(const char* name, const Tensor& t, int64_t rows, int64_t cols, int64_t ld, int64_t stride,
                        int64_t batch) {
  T6_CHECK(ld >= std::max<int64_t>(1, cols) && ld <= INT_MAX, "cpu gemm: leading dimension ", ld, " of ", name,
           " must be at least its row length ", cols, " (and fit in int)");
  T6_CHECK(stride >= 0, "cpu gemm: negative batch stride ", stride, " for ", name);
  if (rows == 0 || cols == 0) return;
  const int64_t last = (batch - 1) * stride + (rows - 1) * ld + cols - 1;
  T6_CHECK(last < t.numel(), "cpu gemm: ", name, " of shape ", shape_str(t.shape()), " is too small for ", batch,
           " matrices of ", rows, "×", cols, " with leading dimension ", ld, " and batch stride ", stride);
}

// Named by dtype, transposes and sizes, so a profile tells the model's products apart.
std::string gemm_name(const Backend::Gemm& g, DType dtype) {
  return cat("gemm ", dtype_name(dtype), g.trans_a ? " Aᵀ" : "", g.trans_b ? " Bᵀ" : "", " ", g.m, "x", g.n, "x",
             g.k, g.batch > 1 ? cat(" batch ", g.batch) : std::string());
}

}  // namespace

void CpuBackend::gemm(const Gemm& g, const Tensor& a, const Tensor& b, Tensor& c) {
  const auto timing = timer_.enabled() ? timer_.time(gemm_name(g, c.dtype())) : KernelTimer::Scope();
  T6_CHECK(c.dtype() != DType::BF16 && a.dtype() != DType::BF16,
           "cpu gemm: bfloat16 matrices are not supported on the CPU (bfloat16 matmul is the CUDA backend's "
           "mixed-precision path); cast the operands to float32");
  expect("gemm", {{"a", a}, {"b", b}, {"c", c}}, c.dtype());
  T6_CHECK(g.m >= 0 && g.n >= 0 && g.k >= 0 && g.batch >= 0 && g.m <= INT_MAX && g.n <= INT_MAX && g.k <= INT_MAX,
           "cpu gemm: sizes m=", g.m, " n=", g.n, " k=", g.k, " batch=", g.batch, " must be non-negative and fit in int");
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  check_gemm_operand("a", a, g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g.lda, g.stride_a, g.batch);
  check_gemm_operand("b", b, g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g.ldb, g.stride_b, g.batch);
  check_gemm_operand("c", c, g.m, g.n, g.ldc, g.stride_c, g.batch);
  dispatch_float("gemm", c.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::gemm(g, ptr<const T>(a), ptr<const T>(b), ptr<T>(c));
  });
}

}  // namespace t6::cpu
