// RMSNorm without a weight (the spec's rmsnorm), forward and backward, over rows of length d.
// float32 with float32 accumulation; one block per row.
#include <cmath>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_utils.cuh"

namespace t6 {

namespace kernels {

// rms_norm_forward: rstd = 1/sqrt(mean(x²) + eps), saved per row; y = x · rstd (core/backend.h).
__global__ void rms_norm_forward(const float* x, float* y, float* rstd, int64_t rows, int64_t d, float eps) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* xr = x + row * d;
    float sum_squares = 0.f;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) sum_squares += xr[j] * xr[j];
    sum_squares = block_reduce(sum_squares, Sum{}, 0.f);
    const float r = 1.f / sqrtf(sum_squares / static_cast<float>(d) + eps);
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) y[row * d + j] = xr[j] * r;
    if (threadIdx.x == 0) rstd[row] = r;
  }
}

// rms_norm_backward: gx = rstd · (gy − x · rstd² · mean(gy ⊙ x)) (core/backend.h).
__global__ void rms_norm_backward(const float* x, const float* rstd, const float* gy, float* gx, int64_t rows,
                                  int64_t d) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float *xr = x + row * d, *gr = gy + row * d;
    float dot = 0.f;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) dot += gr[j] * xr[j];
    const float mean_gx = block_reduce(dot, Sum{}, 0.f) / static_cast<float>(d);
    const float r = rstd[row];
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) gx[row * d + j] = r * (gr[j] - xr[j] * r * r * mean_gx);
  }
}

}  // namespace kernels

void CudaBackend::rms_norm_forward(const Tensor& x, Tensor& y, Tensor& rstd, double eps) {
  const auto timing = timer_.time("rms_norm_forward");
  require_dtype("rms_norm_forward", x, DType::F32);
  if (x.numel() == 0) return;
  const int64_t rows = rstd.numel(), d = x.numel() / rows;
  kernels::rms_norm_forward<<<row_grid(rows), row_threads(d), 0, stream_>>>(
      device_ptr<const float>(x), device_ptr<float>(y), device_ptr<float>(rstd), rows, d, static_cast<float>(eps));
  T6_CUDA_CHECK_LAUNCH(rms_norm_forward);
}

void CudaBackend::rms_norm_backward(const Tensor& x, const Tensor& rstd, const Tensor& gy, Tensor& gx) {
  const auto timing = timer_.time("rms_norm_backward");
  require_dtype("rms_norm_backward", x, DType::F32);
  if (x.numel() == 0) return;
  const int64_t rows = rstd.numel(), d = x.numel() / rows;
  kernels::rms_norm_backward<<<row_grid(rows), row_threads(d), 0, stream_>>>(
      device_ptr<const float>(x), device_ptr<const float>(rstd), device_ptr<const float>(gy), device_ptr<float>(gx),
      rows, d);
  T6_CUDA_CHECK_LAUNCH(rms_norm_backward);
}

}  // namespace t6
