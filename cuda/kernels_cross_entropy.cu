// Fused cross-entropy over rows of logits [N, V] with int32 targets (−1 = ignore), forward and
// backward. float32; one block per row. The forward keeps only each row's logsumexp for the backward;
// count_targets counts the targets that are not ignored on the GPU, so the mean needs nothing read back.
#include <cmath>

#include "cuda/bad_ids.cuh"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_utils.cuh"

namespace t6 {

namespace kernels {

// cross_entropy_forward: lse[i] = logsumexp(logits_i), losses[i] = lse[i] − logits[i, t_i], 0 when
// ignored (core/backend.h). A target outside [−1, V) is reported (bad_ids.h) and its row treated as
// ignored.
__global__ void cross_entropy_forward(const float* logits, const int32_t* targets, float* losses, float* lse,
                                      int64_t rows, int64_t vocab, BadIdSink bad_ids) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* xr = logits + row * vocab;
    // One pass over the row (it is read from memory once, not twice: a row of a 50K vocabulary does
    // not stay in cache between passes): each thread keeps a running max m and Σ exp(x − m), rescaled
    // when m grows; then the threads' sums are rescaled to the row's max and added.
    float m = -INFINITY, sum = 0.f;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
      const float x = xr[j];
      if (x > m) {
        sum = sum * expf(m - x) + 1.f;  // exp(−inf) = 0 on the first value
        m = x;
      } else if (m != -INFINITY) {
        sum += expf(x - m);
      }
    }
    const float row_max = block_reduce(m, Max{}, -INFINITY);
    sum = block_reduce(m == -INFINITY ? 0.f : sum * expf(m - row_max), Sum{}, 0.f);
    if (threadIdx.x == 0) {
      const float row_lse = row_max + logf(sum);
      const int32_t target = targets[row];
      const bool in_range = target >= 0 && target < vocab;
      if (target < -1 || target >= vocab) report_bad_id(bad_ids, BadIdKind::CrossEntropyTarget, target, row, vocab);
      lse[row] = row_lse;
      losses[row] = in_range ? row_lse - xr[target] : 0.f;
    }
  }
}

// count_targets: *divisor = max(1, #{i : 0 ≤ targets[i] < vocab}), one block (core/backend.h).
__global__ void count_targets(const int32_t* targets, int64_t n, int64_t vocab, float* divisor) {
  int32_t counted = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) counted += targets[i] >= 0 && targets[i] < vocab;
  counted = block_reduce(counted, Sum{}, 0);
  if (threadIdx.x == 0) *divisor = static_cast<float>(max(1, counted));
}

// cross_entropy_backward: glogits[i, :] = grad_losses[i] · (softmax(logits_i) − onehot(t_i)), with
// softmax = exp(logits − lse); rows whose target is ignored (or out of range) are 0 (core/backend.h).
// G is float32 or bfloat16 (the operand of the head's gradient products under mixed precision).
template <class G>
__global__ void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse,
                                       const float* grad_losses, G* glogits, int64_t rows, int64_t vocab) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* xr = logits + row * vocab;
    G* gr = glogits + row * vocab;
    const int32_t target = targets[row];
    const bool counted = target >= 0 && target < vocab;
    const float g = grad_losses[row], row_lse = lse[row];
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
      gr[j] = static_cast<G>(counted ? g * (expf(xr[j] - row_lse) - (j == target ? 1.f : 0.f)) : 0.f);
  }
}

}  // namespace kernels

void CudaBackend::cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& losses, Tensor& lse) {
  const auto timing = timer_.time("cross_entropy_forward");
  require_dtype("cross_entropy_forward", logits, DType::F32);
  require_dtype("cross_entropy_forward (targets)", targets, DType::I32);
  const int64_t rows = targets.numel();
  if (rows == 0) return;
  const int64_t vocab = logits.numel() / rows;
  kernels::cross_entropy_forward<<<row_grid(rows), row_threads(vocab), 0, stream_>>>(
      device_ptr<const float>(logits), device_ptr<const int32_t>(targets), device_ptr<float>(losses),
      device_ptr<float>(lse), rows, vocab, bad_ids_.sink());
  T6_CUDA_CHECK_LAUNCH(cross_entropy_forward);
}

void CudaBackend::count_targets(const Tensor& targets, int64_t vocab, Tensor& divisor) {
  const auto timing = timer_.time("count_targets");
  require_dtype("count_targets (targets)", targets, DType::I32);
  require_dtype("count_targets (divisor)", divisor, DType::F32);
  kernels::count_targets<<<1, 1024, 0, stream_>>>(device_ptr<const int32_t>(targets), targets.numel(), vocab,
                                                   device_ptr<float>(divisor));
  T6_CUDA_CHECK_LAUNCH(count_targets);
}

void CudaBackend::cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                         const Tensor& grad_losses, Tensor& glogits) {
  const auto timing = timer_.time("cross_entropy_backward");
  require_dtype("cross_entropy_backward", logits, DType::F32);
  require_dtype("cross_entropy_backward (targets)", targets, DType::I32);
  const int64_t rows = targets.numel();
  if (rows == 0) return;
  const int64_t vocab = logits.numel() / rows;
  const auto launch = [&](auto* g) {
    kernels::cross_entropy_backward<<<row_grid(rows), row_threads(vocab), 0, stream_>>>(
        device_ptr<const float>(logits), device_ptr<const int32_t>(targets), device_ptr<const float>(lse),
        device_ptr<const float>(grad_losses), g, rows, vocab);
  };
  if (glogits.dtype() == DType::BF16) {
    launch(device_ptr<__nv_bfloat16>(glogits));
  } else {
    require_dtype("cross_entropy_backward (glogits)", glogits, DType::F32);
    launch(device_ptr<float>(glogits));
  }
  T6_CUDA_CHECK_LAUNCH(cross_entropy_backward);
}

}  // namespace t6
