// The softmax family over rows: softmax (with scale and the causal mask of attention) and
// log_softmax, forward and backward. float32; one block per row, the row maximum subtracted before
// exponentiating. An output may alias its input.
#include <cmath>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_utils.cuh"

namespace t6 {

namespace kernels {

// softmax_forward: y = softmax(scale · x) per row of length tk; with causal (tq > 0), row i of each
// [tq, tk] block keeps only j ≤ i + (tk − tq) and the masked entries are exactly 0 (core/backend.h).
// A row with every entry masked (tq > tk) is all zeros.
__global__ void softmax_forward(const float* x, float* y, int64_t rows, int64_t tk, float scale, int64_t tq) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* xr = x + row * tk;
    float* yr = y + row * tk;
    const int64_t visible = tq > 0 ? max(int64_t{0}, min(tk, row % tq + (tk - tq) + 1)) : tk;
    float row_max = -INFINITY;
    for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) row_max = fmaxf(row_max, scale * xr[j]);
    row_max = block_reduce(row_max, Max{}, -INFINITY);
    float sum = 0.f;
    for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) sum += expf(scale * xr[j] - row_max);
    sum = block_reduce(sum, Sum{}, 0.f);
    for (int64_t j = threadIdx.x; j < tk; j += blockDim.x)
      yr[j] = j < visible ? expf(scale * xr[j] - row_max) / sum : 0.f;
  }
}

// softmax_backward: gx = scale · y ⊙ (gy − Σ_j gy·y) per row (core/backend.h).
__global__ void softmax_backward(const float* y, const float* gy, float* gx, int64_t rows, int64_t n, float scale) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float *yr = y + row * n, *gr = gy + row * n;
    float dot = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) dot += gr[j] * yr[j];
    dot = block_reduce(dot, Sum{}, 0.f);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) gx[row * n + j] = scale * yr[j] * (gr[j] - dot);
  }
}

// log_softmax_forward: y = x − max − log Σ exp(x − max) per row (core/backend.h).
__global__ void log_softmax_forward(const float* x, float* y, int64_t rows, int64_t n) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* xr = x + row * n;
    float row_max = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) row_max = fmaxf(row_max, xr[j]);
    row_max = block_reduce(row_max, Max{}, -INFINITY);
    float sum = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += expf(xr[j] - row_max);
    const float log_sum = logf(block_reduce(sum, Sum{}, 0.f));
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) y[row * n + j] = xr[j] - row_max - log_sum;
  }
}

// log_softmax_backward: gx = gy − e^y · Σ_j gy per row (core/backend.h).
__global__ void log_softmax_backward(const float* y, const float* gy, float* gx, int64_t rows, int64_t n) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float *yr = y + row * n, *gr = gy + row * n;
    float sum = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += gr[j];
    sum = block_reduce(sum, Sum{}, 0.f);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) gx[row * n + j] = gr[j] - expf(yr[j]) * sum;
  }
}

}  // namespace kernels

void CudaBackend::softmax_forward(const Tensor& x, Tensor& y, double scale, bool causal, int64_t tq) {
  const auto timing = timer_.time("softmax_forward");
  require_dtype("softmax_forward", x, DType::F32);
  if (x.numel() == 0) return;
  const int64_t tk = x.size(-1), rows = x.numel() / tk;
  kernels::softmax_forward<<<row_grid(rows), row_threads(tk), 0, stream_>>>(
      device_ptr<const float>(x), device_ptr<float>(y), rows, tk, static_cast<float>(scale), causal ? tq : 0);
  T6_CUDA_CHECK_LAUNCH(softmax_forward);
}

void CudaBackend::softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, double scale) {
  const auto timing = timer_.time("softmax_backward");
  require_dtype("softmax_backward", y, DType::F32);
  if (y.numel() == 0) return;
  const int64_t n = y.size(-1), rows = y.numel() / n;
  kernels::softmax_backward<<<row_grid(rows), row_threads(n), 0, stream_>>>(
      device_ptr<const float>(y), device_ptr<const float>(gy), device_ptr<float>(gx), rows, n,
      static_cast<float>(scale));
  T6_CUDA_CHECK_LAUNCH(softmax_backward);
}

void CudaBackend::log_softmax_forward(const Tensor& x, Tensor& y) {
  const auto timing = timer_.time("log_softmax_forward");
  require_dtype("log_softmax_forward", x, DType::F32);
  if (x.numel() == 0) return;
  const int64_t n = x.size(-1), rows = x.numel() / n;
  kernels::log_softmax_forward<<<row_grid(rows), row_threads(n), 0, stream_>>>(device_ptr<const float>(x),
                                                                               device_ptr<float>(y), rows, n);
  T6_CUDA_CHECK_LAUNCH(log_softmax_forward);
}

void CudaBackend::log_softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx) {
  const auto timing = timer_.time("log_softmax_backward");
  require_dtype("log_softmax_backward", y, DType::F32);
  if (y.numel() == 0) return;
  const int64_t n = y.size(-1), rows = y.numel() / n;
  kernels::log_softmax_backward<<<row_grid(rows), row_threads(n), 0, stream_>>>(
      device_ptr<const float>(y), device_ptr<const float>(gy), device_ptr<float>(gx), rows, n);
  T6_CUDA_CHECK_LAUNCH(log_softmax_backward);
}

}  // namespace t6
