// Embedding lookup (forward: gather rows of the weight) and its gradient (scatter-add rows, with
// atomics because ids repeat). float32 and float64; one block per looked-up row. An id outside
// [0, vocab) is never used as an index: it is reported (bad_ids.h), its output row is zero and its
// gradient is dropped.
#include "cuda/bad_ids.cuh"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_utils.cuh"

namespace t6 {

namespace kernels {

// embedding_forward: out[i, :] = weight[ids[i], :] (core/backend.h).
template <class T>
__global__ void embedding_forward(const T* weight, const int32_t* ids, T* out, int64_t n, int64_t dim, int64_t vocab,
                                  BadIdSink bad_ids) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int32_t id = ids[i];
    const bool in_range = id >= 0 && id < vocab;
    if (!in_range && threadIdx.x == 0) report_bad_id(bad_ids, BadIdKind::EmbeddingId, id, i, vocab);
    for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) out[i * dim + j] = in_range ? weight[id * dim + j] : T(0);
  }
}

// embedding_backward: gweight[ids[i], :] += gout[i, :], repeated ids accumulating (core/backend.h).
// Atomic adds make the summation order, and so the last bits of a repeated row, vary between runs.
template <class T>
__global__ void embedding_backward(const int32_t* ids, const T* gout, T* gweight, int64_t n, int64_t dim,
                                   int64_t vocab, BadIdSink bad_ids) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int32_t id = ids[i];
    if (id < 0 || id >= vocab) {
      if (threadIdx.x == 0) report_bad_id(bad_ids, BadIdKind::EmbeddingId, id, i, vocab);
      continue;
    }
    for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) atomicAdd(&gweight[id * dim + j], gout[i * dim + j]);
  }
}

}  // namespace kernels

void CudaBackend::embedding_forward(const Tensor& weight, const Tensor& ids, Tensor& out) {
  const auto timing = timer_.time("embedding_forward");
  require_dtype("embedding_forward (ids)", ids, DType::I32);
  const int64_t n = ids.numel();
  if (n == 0 || weight.numel() == 0) return;
  const int64_t vocab = weight.size(0), dim = weight.numel() / vocab;
  dispatch_float("embedding_forward", weight.dtype(), [&](auto zero) {
    using T = decltype(zero);
    kernels::embedding_forward<<<row_grid(n), row_threads(dim), 0, stream_>>>(
        device_ptr<const T>(weight), device_ptr<const int32_t>(ids), device_ptr<T>(out), n, dim, vocab,
        bad_ids_.sink());
    T6_CUDA_CHECK_LAUNCH(embedding_forward);
  });
}

void CudaBackend::embedding_backward(const Tensor& ids, const Tensor& gout, Tensor& gweight) {
  const auto timing = timer_.time("embedding_backward");
  require_dtype("embedding_backward (ids)", ids, DType::I32);
  const int64_t n = ids.numel();
  if (n == 0 || gweight.numel() == 0) return;
  const int64_t vocab = gweight.size(0), dim = gweight.numel() / vocab;
  dispatch_float("embedding_backward", gweight.dtype(), [&](auto zero) {
    using T = decltype(zero);
    kernels::embedding_backward<<<row_grid(n), row_threads(dim), 0, stream_>>>(
        device_ptr<const int32_t>(ids), device_ptr<const T>(gout), device_ptr<T>(gweight), n, dim, vocab,
        bad_ids_.sink());
    T6_CUDA_CHECK_LAUNCH(embedding_backward);
  });
}

}  // namespace t6
