// Fused cross-entropy over rows of logits [N, V] with int32 targets (−1 = ignore), forward and
// backward. float32; one block per row. The forward keeps only each row's logsumexp for the backward.
#include <cmath>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_utils.cuh"

namespace t6 {

namespace kernels {

// cross_entropy_forward: lse[i] = logsumexp(logits_i), losses[i] = lse[i] − logits[i, t_i], 0 when
// ignored (core/backend.h). A target outside [−1, V) is counted in *bad_targets and its loss is 0.
__global__ void cross_entropy_forward(const float* logits, const int32_t* targets, float* losses, float* lse,
                                      int64_t rows, int64_t vocab, int32_t* bad_targets) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* xr = logits + row * vocab;
    float row_max = -INFINITY;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) row_max = fmaxf(row_max, xr[j]);
    row_max = block_reduce(row_max, Max{}, -INFINITY);
    float sum = 0.f;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) sum += expf(xr[j] - row_max);
    sum = block_reduce(sum, Sum{}, 0.f);
    if (threadIdx.x == 0) {
      const float row_lse = row_max + logf(sum);
      const int32_t target = targets[row];
      const bool in_range = target >= 0 && target < vocab;
      if (target < -1 || target >= vocab) atomicAdd(bad_targets, 1);
      lse[row] = row_lse;
      losses[row] = in_range ? row_lse - xr[target] : 0.f;
    }
  }
}

// cross_entropy_backward: glogits[i, :] = grad_losses[i] · (softmax(logits_i) − onehot(t_i)), with
// softmax = exp(logits − lse); rows whose target is ignored (or out of range) are 0 (core/backend.h).
__global__ void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse,
                                       const float* grad_losses, float* glogits, int64_t rows, int64_t vocab) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* xr = logits + row * vocab;
    float* gr = glogits + row * vocab;
    const int32_t target = targets[row];
    const bool counted = target >= 0 && target < vocab;
    const float g = grad_losses[row], row_lse = lse[row];
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
      gr[j] = counted ? g * (expf(xr[j] - row_lse) - (j == target ? 1.f : 0.f)) : 0.f;
  }
}

}  // namespace kernels

int64_t CudaBackend::cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& losses, Tensor& lse) {
  require_dtype("cross_entropy_forward", logits, DType::F32);
  require_dtype("cross_entropy_forward (targets)", targets, DType::I32);
  const int64_t rows = targets.numel();
  if (rows == 0) return 0;
  const int64_t vocab = logits.numel() / rows;
  DeviceBuffer bad_targets(allocator_, sizeof(int32_t));
  T6_CUDA_CHECK(cudaMemsetAsync(bad_targets.as<int32_t>(), 0, sizeof(int32_t), stream_));
  kernels::cross_entropy_forward<<<row_grid(rows), row_threads(vocab), 0, stream_>>>(
      device_ptr<const float>(logits), device_ptr<const int32_t>(targets), device_ptr<float>(losses),
      device_ptr<float>(lse), rows, vocab, bad_targets.as<int32_t>());
  T6_CUDA_CHECK_LAUNCH(cross_entropy_forward);
  int32_t bad = 0;
  copy_to_host(&bad, bad_targets.as<int32_t>(), sizeof bad);
  return bad;
}

void CudaBackend::cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                         const Tensor& grad_losses, Tensor& glogits) {
  require_dtype("cross_entropy_backward", logits, DType::F32);
  require_dtype("cross_entropy_backward (targets)", targets, DType::I32);
  const int64_t rows = targets.numel();
  if (rows == 0) return;
  const int64_t vocab = logits.numel() / rows;
  kernels::cross_entropy_backward<<<row_grid(rows), row_threads(vocab), 0, stream_>>>(
      device_ptr<const float>(logits), device_ptr<const int32_t>(targets), device_ptr<const float>(lse),
      device_ptr<const float>(grad_losses), device_ptr<float>(glogits), rows, vocab);
  T6_CUDA_CHECK_LAUNCH(cross_entropy_backward);
}

}  // namespace t6
