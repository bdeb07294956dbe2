// Batched matrix multiply through cuBLAS: float32 (FP32 or, when allowed, TF32 tensor cores), float64,
// and mixed precision (bfloat16 A and B, float32 accumulation and C).
//
// One shape skips cuBLAS: a few rows times a transposed weight, C (m×n) = A (m×k) · Bᵀ with m ≤ 8 — a
// linear layer during decoding, one token per row. cuBLAS runs it as a tiled product over a handful
// of blocks, which leaves most of the GPU idle whatever the size; gemm_few_rows gives every output
// column a warp, so the whole GPU streams the weight once, at memory speed.
//
// cuBLAS is column-major and t6 is row-major. A row-major m×n matrix with leading dimension ld is,
// read column-major, its n×m transpose with the same ld. So instead of C = op(A)·op(B) we ask cuBLAS
// for Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands and the sizes m and n, keep the transpose flags and the
// leading dimensions. No data moves.
#include <algorithm>
#include <climits>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_utils.cuh"

namespace t6 {

namespace {

int as_int(int64_t value, const char* what) {
  T6_CHECK(value >= 0 && value <= INT_MAX, "cuda gemm: ", what, " = ", value,
           " does not fit the int that cuBLAS takes");
  return static_cast<int>(value);
}

}  // namespace

namespace kernels {

constexpr int kFewRowsMax = 8;
constexpr int kFewRowsWarps = 8;  // output columns per block

// gemm_few_rows: C[i, j] = alpha · Σ_k A[i, k] B[j, k] + beta · C[i, j] for i < m ≤ M, one warp per
// column j: the lanes stride along k, so each step reads 128 contiguous bytes of B's row j, and the
// few rows of A come from the cache. C is read only when beta ≠ 0 (it may be uninitialised).
template <int M>
__global__ void gemm_few_rows(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, int m,
                              int64_t n, int64_t k, float alpha, float beta) {
  const int lane = threadIdx.x % 32;
  const int64_t j = int64_t(blockIdx.x) * kFewRowsWarps + threadIdx.x / 32;
  if (j >= n) return;
  const float* bj = b + j * ldb;
  float acc[M] = {};
  for (int64_t kk = lane; kk < k; kk += 32) {
    const float w = bj[kk];
#pragma unroll
    for (int i = 0; i < M; ++i)
      if (i < m) acc[i] += a[i * lda + kk] * w;
  }
#pragma unroll
  for (int i = 0; i < M; ++i) {
    if (i >= m) break;
    const float dot = warp_reduce(acc[i], Sum{});
    if (lane == 0) c[i * ldc + j] = beta != 0.f ? alpha * dot + beta * c[i * ldc + j] : alpha * dot;
  }
}

}  // namespace kernels

void CudaBackend::gemm(const Gemm& g, const Tensor& a, const Tensor& b, Tensor& c) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  if (a.dtype() == DType::F32 && b.dtype() == DType::F32 && c.dtype() == DType::F32 && g.batch == 1 && !g.trans_a &&
      g.trans_b && g.m <= kernels::kFewRowsMax && g.k > 0) {
    const auto timing = timer_.time("gemm_few_rows");
    const auto launch = [&](auto rows) {
      constexpr int M = decltype(rows)::value;
      const unsigned blocks = static_cast<unsigned>((g.n + kernels::kFewRowsWarps - 1) / kernels::kFewRowsWarps);
      kernels::gemm_few_rows<M><<<blocks, 32 * kernels::kFewRowsWarps, 0, stream_>>>(
          device_ptr<const float>(a), g.lda, device_ptr<const float>(b), g.ldb, device_ptr<float>(c), g.ldc,
          static_cast<int>(g.m), g.n, g.k, static_cast<float>(g.alpha), static_cast<float>(g.beta));
    };
    if (g.m == 1) launch(std::integral_constant<int, 1>{});
    else if (g.m <= 4) launch(std::integral_constant<int, 4>{});
    else launch(std::integral_constant<int, 8>{});
    T6_CUDA_CHECK_LAUNCH(gemm_few_rows);
    return;
  }
  // Named by dtype and sizes, so a profile tells the model's products apart.
  const auto timing = timer_.enabled() ? timer_.time(cat("gemm ", dtype_name(a.dtype()), " ", g.m, "x", g.n, "x", g.k,
                                                         g.batch > 1 ? cat(" batch ", g.batch) : std::string()))
                                       : KernelTimer::Scope();
  cudaDataType_t input_type, output_type;
  cublasComputeType_t compute;
  if (a.dtype() == DType::F32 && b.dtype() == DType::F32 && c.dtype() == DType::F32) {
    input_type = output_type = CUDA_R_32F;
    compute = tf32_ ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  } else if (a.dtype() == DType::BF16 && b.dtype() == DType::BF16 && c.dtype() == DType::F32) {
    input_type = CUDA_R_16BF;
    output_type = CUDA_R_32F;
    compute = CUBLAS_COMPUTE_32F;
  } else if (a.dtype() == DType::F64 && b.dtype() == DType::F64 && c.dtype() == DType::F64) {
    input_type = output_type = CUDA_R_64F;
    compute = CUBLAS_COMPUTE_64F;
  } else {
    throw Error(cat("cuda gemm: unsupported dtypes a=", dtype_name(a.dtype()), ", b=", dtype_name(b.dtype()),
                    ", c=", dtype_name(c.dtype()),
                    "; use float32 or float64 throughout, or bfloat16 a and b with a float32 c"));
  }
  // The scalars have the compute type's precision: float for the 32F compute types, double for 64F.
  const float alpha32 = static_cast<float>(g.alpha), beta32 = static_cast<float>(g.beta);
  const bool wide = compute == CUBLAS_COMPUTE_64F;
  const void* alpha = wide ? static_cast<const void*>(&g.alpha) : &alpha32;
  const void* beta = wide ? static_cast<const void*>(&g.beta) : &beta32;

  // An empty operand (k = 0) comes with leading dimension 0, which cuBLAS rejects although it never
  // reads the operand; it then just scales C by beta.
  const auto leading = [](int64_t ld, const char* what) { return as_int(std::max<int64_t>(ld, 1), what); };
  // Cᵀ (n×m) = op(B)ᵀ (n×k) · op(A)ᵀ (k×m)
  T6_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      cublas_, g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, as_int(g.n, "n"),
      as_int(g.m, "m"), as_int(g.k, "k"), alpha, b.raw_data(), input_type, leading(g.ldb, "ldb"), g.stride_b,
      a.raw_data(), input_type, leading(g.lda, "lda"), g.stride_a, beta, c.raw_data(), output_type,
      leading(g.ldc, "ldc"), g.stride_c, as_int(g.batch, "batch"), compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace t6
