// Reductions: sum_axis over the middle axis of [outer, n, inner], and sum_of_squares over a list of
// tensors (for global-norm gradient clipping). Both accumulate in double, as the CPU twin does, so the
// two backends agree to float32 rounding of the result; the kernels are memory-bound either way.
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_utils.cuh"

namespace t6 {

namespace {
constexpr int kTileColumns = 32, kTileRows = 8;  // sum_axis_strided's block: 32 columns × 8 row groups
constexpr int kSquaresBlocks = 256;              // sum_of_squares blocks per tensor, at most
}  // namespace

namespace kernels {

// sum_axis with inner = 1: y[o] = Σ_r x[o, r] (core/backend.h), one block per contiguous row.
template <class T>
__global__ void sum_axis_rows(const T* x, T* y, int64_t outer, int64_t n) {
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    double sum = 0;
    for (int64_t r = threadIdx.x; r < n; r += blockDim.x) sum += x[o * n + r];
    sum = block_reduce(sum, Sum{}, 0.0);
    if (threadIdx.x == 0) y[o] = static_cast<T>(sum);
  }
}

// sum_axis with inner > 1: y[o, i] = Σ_r x[o, r, i] (core/backend.h). A block owns 32 adjacent columns
// i (coalesced reads) of one o; its 8 thread rows split r and meet in shared memory.
template <class T>
__global__ void sum_axis_strided(const T* x, T* y, int64_t outer, int64_t n, int64_t inner) {
  __shared__ double partial[kTileRows][kTileColumns + 1];
  const int64_t column_tiles = (inner + kTileColumns - 1) / kTileColumns;
  for (int64_t tile = blockIdx.x; tile < outer * column_tiles; tile += gridDim.x) {
    const int64_t o = tile / column_tiles, i = tile % column_tiles * kTileColumns + threadIdx.x;
    double sum = 0;
    if (i < inner)
      for (int64_t r = threadIdx.y; r < n; r += kTileRows) sum += x[(o * n + r) * inner + i];
    partial[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && i < inner) {
      for (int k = 1; k < kTileRows; ++k) sum += partial[k][threadIdx.x];
      y[o * inner + i] = static_cast<T>(sum);
    }
    __syncthreads();  // partial is reused by the next tile
  }
}

// sum_of_squares, first pass: partials[block] = Σ x² over the block's grid-stride share of one tensor.
template <class T>
__global__ void sum_of_squares(const T* x, int64_t n, double* partials) {
  double sum = 0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const double v = x[i];
    sum += v * v;
  }
  sum = block_reduce(sum, Sum{}, 0.0);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

// sum_of_squares, second pass: *total = Σ partials, in a fixed order so the result is reproducible.
__global__ void sum_of_squares_total(const double* partials, int64_t count, double* total) {
  double sum = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) sum += partials[i];
  sum = block_reduce(sum, Sum{}, 0.0);
  if (threadIdx.x == 0) *total = sum;
}

}  // namespace kernels

void CudaBackend::sum_axis(const Tensor& x, Tensor& y, int64_t outer, int64_t n, int64_t inner) {
  const auto timing = timer_.time("sum_axis");
  if (outer * inner == 0) return;
  dispatch_float("sum_axis", x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if (inner == 1) {
      kernels::sum_axis_rows<<<row_grid(outer), row_threads(n), 0, stream_>>>(device_ptr<const T>(x), device_ptr<T>(y),
                                                                              outer, n);
      T6_CUDA_CHECK_LAUNCH(sum_axis_rows);
    } else {
      const int64_t tiles = outer * ((inner + kTileColumns - 1) / kTileColumns);
      kernels::sum_axis_strided<<<row_grid(tiles), dim3(kTileColumns, kTileRows), 0, stream_>>>(
          device_ptr<const T>(x), device_ptr<T>(y), outer, n, inner);
      T6_CUDA_CHECK_LAUNCH(sum_axis_strided);
    }
  });
}

double CudaBackend::sum_of_squares(const std::vector<Tensor>& tensors) {
  const auto timing = timer_.time("sum_of_squares");
  if (tensors.empty()) return 0.0;
  // One slot of kSquaresBlocks partial sums per tensor; blocks a small tensor does not use stay 0.
  const int64_t count = static_cast<int64_t>(tensors.size()) * kSquaresBlocks;
  DeviceBuffer partials(allocator_, static_cast<size_t>(count) * sizeof(double));
  DeviceBuffer total(allocator_, sizeof(double));
  T6_CUDA_CHECK(cudaMemsetAsync(partials.as<double>(), 0, static_cast<size_t>(count) * sizeof(double), stream_));
  for (size_t t = 0; t < tensors.size(); ++t) {
    const Tensor& x = tensors[t];
    if (x.numel() == 0) continue;
    dispatch_float("sum_of_squares", x.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const unsigned blocks = std::min<unsigned>(grid_for(x.numel()), kSquaresBlocks);
      kernels::sum_of_squares<<<blocks, kThreads, 0, stream_>>>(device_ptr<const T>(x), x.numel(),
                                                                partials.as<double>() + t * kSquaresBlocks);
      T6_CUDA_CHECK_LAUNCH(sum_of_squares);
    });
  }
  kernels::sum_of_squares_total<<<1, 1024, 0, stream_>>>(partials.as<double>(), count, total.as<double>());
  T6_CUDA_CHECK_LAUNCH(sum_of_squares_total);
  double result = 0;
  copy_to_host(&result, total.as<double>(), sizeof(double));
  return result;
}

}  // namespace t6
