// RMSNorm without a weight (the spec's rmsnorm), forward and backward, over rows of length d.
// float32 with float32 accumulation, the forward's y float32 or bfloat16 (mixed precision's input of
// the projections, core/backend.h); one warp per row, eight rows per block. A model's rows are short
// (d = 768 in the paper's small T6), so a whole block per row would spend its time in block-wide
// barriers: one warp reduces with shuffles alone, and its second pass over the row is served from L1.
#include <cmath>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_utils.cuh"

namespace t6 {

namespace {

constexpr int kRowsPerBlock = 8;

unsigned warp_row_grid(int64_t rows) {
  return static_cast<unsigned>(std::clamp<int64_t>((rows + kRowsPerBlock - 1) / kRowsPerBlock, 1, 1 << 20));
}

}  // namespace

namespace kernels {

template <class Y>
__global__ void rms_norm_forward(const float* x, Y* y, float* rstd, int64_t rows, int64_t d, float eps) {
  const int lane = threadIdx.x % 32;
  // 4-value accesses when every row starts aligned (d % 4 == 0 and aligned tensors: the model's case)
  const bool vectors = d % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(y) % (4 * sizeof(Y)) == 0;
  for (int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32; row < rows;
       row += int64_t(gridDim.x) * kRowsPerBlock) {
    const float* xr = x + row * d;
    Y* yr = y + row * d;
    float sum_squares = 0.f;
    if (vectors) {
      for (int64_t j = lane; j < d / 4; j += 32) {
        const float4 v = reinterpret_cast<const float4*>(xr)[j];
        sum_squares += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
      }
    } else {
      for (int64_t j = lane; j < d; j += 32) sum_squares += xr[j] * xr[j];
    }
    sum_squares = warp_reduce(sum_squares, Sum{});
    const float r = 1.f / sqrtf(sum_squares / static_cast<float>(d) + eps);
    if (vectors) {
      for (int64_t j = lane; j < d / 4; j += 32) {
        const float4 v = reinterpret_cast<const float4*>(xr)[j];
        store4(yr, j, make_float4(v.x * r, v.y * r, v.z * r, v.w * r));
      }
    } else {
      for (int64_t j = lane; j < d; j += 32) yr[j] = static_cast<Y>(xr[j] * r);
    }
    if (lane == 0) rstd[row] = r;
  }
}

__global__ void rms_norm_backward(const float* x, const float* rstd, const float* gy, float* gx, int64_t rows,
                                  int64_t d) {
  const int lane = threadIdx.x % 32;
  // float4 accesses when every row starts on 16 bytes (d % 4 == 0 and aligned tensors: the model's case)
  const bool vectors = d % 4 == 0 && ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(gy) |
                                       reinterpret_cast<uintptr_t>(gx)) % 16) == 0;
  for (int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32; row < rows;
       row += int64_t(gridDim.x) * kRowsPerBlock) {
    const float *xr = x + row * d, *gr = gy + row * d;
    float* gxr = gx + row * d;
    float dot = 0.f;
    if (vectors) {
      for (int64_t j = lane; j < d / 4; j += 32) {
        const float4 g = reinterpret_cast<const float4*>(gr)[j], v = reinterpret_cast<const float4*>(xr)[j];
        dot += g.x * v.x + g.y * v.y + g.z * v.z + g.w * v.w;
      }
    } else {
      for (int64_t j = lane; j < d; j += 32) dot += gr[j] * xr[j];
    }
    const float mean_gx = warp_reduce(dot, Sum{}) / static_cast<float>(d);
    const float r = rstd[row], c = r * r * mean_gx;
    // forward: y = x·r with r = (mean(x²)+eps)^(-1/2), so dx = r·(gy − x·r²·mean(gy ⊙ x))
    if (vectors) {
      for (int64_t j = lane; j < d / 4; j += 32) {
        const float4 g = reinterpret_cast<const float4*>(gr)[j], v = reinterpret_cast<const float4*>(xr)[j];
        reinterpret_cast<float4*>(gxr)[j] =
            make_float4(r * (g.x - v.x * c), r * (g.y - v.y * c), r * (g.z - v.z * c), r * (g.w - v.w * c));
      }
    } else {
      for (int64_t j = lane; j < d; j += 32) gxr[j] = r * (gr[j] - xr[j] * c);
    }
  }
}

}  // namespace kernels

void CudaBackend::rms_norm_forward(const Tensor& x, Tensor& y, Tensor& rstd, double eps) {
  const auto timing = timer_.time("rms_norm_forward");
  require_dtype("rms_norm_forward", x, DType::F32);
  if (x.numel() == 0) return;
  const int64_t rows = rstd.numel(), d = x.numel() / rows;
  const auto launch = [&](auto* out) {
    kernels::rms_norm_forward<<<warp_row_grid(rows), 32 * kRowsPerBlock, 0, stream_>>>(
        device_ptr<const float>(x), out, device_ptr<float>(rstd), rows, d, static_cast<float>(eps));
  };
  if (y.dtype() == DType::BF16) {
    launch(device_ptr<__nv_bfloat16>(y));
  } else {
    require_dtype("rms_norm_forward (y)", y, DType::F32);
    launch(device_ptr<float>(y));
  }
  T6_CUDA_CHECK_LAUNCH(rms_norm_forward);
}

void CudaBackend::rms_norm_backward(const Tensor& x, const Tensor& rstd, const Tensor& gy, Tensor& gx) {
  const auto timing = timer_.time("rms_norm_backward");
  require_dtype("rms_norm_backward", x, DType::F32);
  if (x.numel() == 0) return;
  const int64_t rows = rstd.numel(), d = x.numel() / rows;
  kernels::rms_norm_backward<<<warp_row_grid(rows), 32 * kRowsPerBlock, 0, stream_>>>(
      device_ptr<const float>(x), device_ptr<const float>(rstd), device_ptr<const float>(gy), device_ptr<float>(gx),
      rows, d);
  T6_CUDA_CHECK_LAUNCH(rms_norm_backward);
}

}  // namespace t6
