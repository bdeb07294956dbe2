// OpenBLAS's entry points by element type, so that a kernel templated on float and double calls one
// name. Row-major throughout; the sizes must fit in int (the callers check).
#pragma once
#include <cblas.h>

namespace t6::cpu {

inline void blas_gemm_call(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha, const float* a,
                           int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void blas_gemm_call(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, double alpha, const double* a,
                           int lda, const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void blas_gemv_call(CBLAS_TRANSPOSE t, int rows, int cols, float alpha, const float* m, int ld, const float* x,
                           int incx, float* y) {
  cblas_sgemv(CblasRowMajor, t, rows, cols, alpha, m, ld, x, incx, 0.0f, y, 1);
}
inline void blas_gemv_call(CBLAS_TRANSPOSE t, int rows, int cols, double alpha, const double* m, int ld,
                           const double* x, int incx, double* y) {
  cblas_dgemv(CblasRowMajor, t, rows, cols, alpha, m, ld, x, incx, 0.0, y, 1);
}

}  // namespace t6::cpu
