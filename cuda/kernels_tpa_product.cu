// TPA's per-token factor product, forward and backward, float32 and float64 (the CPU twin is
// core/cpu/kernels_tpa_product.cpp; the shapes are in core/backend.h).
//
// Every token n has factors a[n] (H×R) and b[n] (R×dh) and gets heads out[n] = scale · a[n]·b[n]
// (H×dh). R is 1 to a few, so this is memory traffic, not arithmetic: at the paper's small T6 a token
// reads 196–588 factor values and writes 2,176 head values. Each warp takes one token at a time (a
// grid-stride loop over tokens) and stages its factors in its own slice of shared memory; its lanes
// then walk the heads row by row, lane j owning columns j, j + 32, …, so every global read and write
// is coalesced, and no step needs more than the warp to agree (no block barriers).
//
// For float32 with head_dim 32, 64 or 128 and R ≤ 8 (every T6 configuration in the paper) a second
// pair of kernels, `*_registers`, keeps the token's b rows (and, backward, its gb sums) in registers,
// lane j holding columns j, j + 32, …: no shared memory and no index arithmetic per element, since the
// shared-memory kernels are bound by instruction issue (docs/PERF.md). Those serve float64 and every
// other shape.
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_utils.cuh"

namespace t6 {

namespace {

constexpr int kMaxTokenWarps = 8;
constexpr size_t kDefaultSharedLimit = 48 * 1024;  // dynamic shared memory allowed without opting in

// A launch: warps per block (one token each) and the block's shared memory.
struct TokenLaunch {
  int warps;
  size_t bytes;
  unsigned blocks;
};

// As many warps per block (up to 8) as fit the default shared-memory limit with `per_warp` bytes
// each; a token too large for even one warp opts in to more, or throws naming the shape.
template <class Kernel>
TokenLaunch plan_launch(Kernel kernel, size_t per_warp, const Backend::TPAProduct& p, const char* what) {
  TokenLaunch l;
  l.warps = static_cast<int>(std::clamp<size_t>(kDefaultSharedLimit / per_warp, 1, kMaxTokenWarps));
  l.bytes = per_warp * static_cast<size_t>(l.warps);
  const int64_t groups = (p.tokens + l.warps - 1) / l.warps;
  l.blocks = static_cast<unsigned>(std::clamp<int64_t>(groups, 1, 1 << 20));
  if (l.bytes > kDefaultSharedLimit) {
    const size_t limit = static_cast<size_t>(device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin));
    T6_CHECK(l.bytes <= limit, "cuda ", what, ": one token's factors (H=", p.heads, ", R=", p.rank,
             ", dh=", p.head_dim, ") need ", l.bytes, " bytes of shared memory, more than this GPU's ", limit,
             "; use fewer heads, a lower rank or a smaller head_dim");
    T6_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(l.bytes)));
  }
  return l;
}

// Calls fn(kMaxR, C) as integral constants when the register kernels take the shape (float32,
// head_dim 32, 64 or 128, R ≤ 8) and returns true; false otherwise.
template <class Fn>
bool dispatch_registers(const Backend::TPAProduct& p, DType dtype, Fn&& fn) {
  if (dtype != DType::F32 || p.rank > 8) return false;
  const auto with_rank = [&](auto c) {
    if (p.rank <= 2) fn(std::integral_constant<int, 2>{}, c);
    else fn(std::integral_constant<int, 8>{}, c);
  };
  switch (p.head_dim) {
    case 32: with_rank(std::integral_constant<int, 1>{}); return true;
    case 64: with_rank(std::integral_constant<int, 2>{}); return true;
    case 128: with_rank(std::integral_constant<int, 4>{}); return true;
    default: return false;
  }
}

// One block of 8 warps per 8 tokens, one token per warp (a grid-stride loop past 2^20 blocks).
unsigned register_grid(int64_t tokens) {
  return static_cast<unsigned>(std::clamp<int64_t>((tokens + kMaxTokenWarps - 1) / kMaxTokenWarps, 1, 1 << 20));
}

}  // namespace

namespace kernels {

// Copies n values from global to shared memory with one warp.
template <class T>
__device__ void warp_stage(const T* from, T* to, int n, int lane) {
#pragma unroll 4
  for (int i = lane; i < n; i += 32) to[i] = from[i];
}

// tpa_product_forward: out[n, h, j] = scale · Σ_r a[n, h, r] · b[n, r, j]
template <class T>
__global__ void tpa_product_forward(const T* a, const T* b, T* out, int64_t tokens, int H, int R, int dh, T scale) {
  extern __shared__ __align__(16) unsigned char shared[];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  T* a_s = reinterpret_cast<T*>(shared) + warp * (H * R + R * dh);  // this warp's (H,R)
  T* b_s = a_s + H * R;                                               // and (R,dh)
  for (int64_t n = int64_t(blockIdx.x) * warps + warp; n < tokens; n += int64_t(gridDim.x) * warps) {
    __syncwarp();  // the previous token's reads are done
    warp_stage(a + n * H * R, a_s, H * R, lane);
    warp_stage(b + n * R * dh, b_s, R * dh, lane);
    __syncwarp();
    T* on = out + n * H * dh;
#pragma unroll 2
    for (int h = 0; h < H; ++h)
      for (int j = lane; j < dh; j += 32) {
        T sum = 0;
        for (int r = 0; r < R; ++r) sum += a_s[h * R + r] * b_s[r * dh + j];
        on[h * dh + j] = scale * sum;
      }
  }
}

// tpa_product_backward: with g = d out, ga[n] = scale · g[n]·b[n]ᵀ and gb[n] = scale · a[n]ᵀ·g[n].
// The lanes walk g's rows once; gb accumulates in the warp's shared memory (each lane owns its
// columns, so no two lanes touch one word), ga is one warp sum per (h, r).
template <class T>
__global__ void tpa_product_backward(const T* a, const T* b, const T* gout, T* ga, T* gb, int64_t tokens, int H,
                                     int R, int dh, T scale) {
  extern __shared__ __align__(16) unsigned char shared[];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  T* a_s = reinterpret_cast<T*>(shared) + warp * (H * R + 2 * R * dh);  // (H,R)
  T* b_s = a_s + H * R;                                                   // (R,dh)
  T* gb_s = b_s + R * dh;                                                 // (R,dh), the sums of gb
  for (int64_t n = int64_t(blockIdx.x) * warps + warp; n < tokens; n += int64_t(gridDim.x) * warps) {
    __syncwarp();
    warp_stage(a + n * H * R, a_s, H * R, lane);
    warp_stage(b + n * R * dh, b_s, R * dh, lane);
    for (int i = lane; i < R * dh; i += 32) gb_s[i] = 0;
    __syncwarp();
    const T* gn = gout + n * H * dh;
    for (int h = 0; h < H; ++h) {
      for (int r = 0; r < R; ++r) {
        // forward: out[h,j] = scale · Σ_r a[h,r]·b[r,j], so ga[h,r] = scale · Σ_j g[h,j]·b[r,j] ...
        T partial = 0;
        for (int j = lane; j < dh; j += 32) {
          const T g = gn[h * dh + j];
          partial += g * b_s[r * dh + j];
          gb_s[r * dh + j] += a_s[h * R + r] * g;  // ... and gb[r,j] = scale · Σ_h a[h,r]·g[h,j]
        }
        const T dot = warp_reduce(partial, Sum{});
        if (lane == 0) ga[n * H * R + h * R + r] = scale * dot;
      }
    }
    __syncwarp();
    for (int i = lane; i < R * dh; i += 32) gb[n * R * dh + i] = scale * gb_s[i];
  }
}

// tpa_product_forward for float32, C = dh / 32 columns per lane, R ≤ kMaxR.
template <int kMaxR, int C>
__global__ void tpa_product_forward_registers(const float* a, const float* b, float* out, int64_t tokens, int H,
                                              int R, float scale) {
  constexpr int dh = 32 * C;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (int64_t n = int64_t(blockIdx.x) * warps + warp; n < tokens; n += int64_t(gridDim.x) * warps) {
    float bn[kMaxR][C];  // b[n, r, lane + 32c]
#pragma unroll
    for (int r = 0; r < kMaxR; ++r)
#pragma unroll
      for (int c = 0; c < C; ++c) bn[r][c] = r < R ? b[(n * R + r) * dh + lane + 32 * c] : 0.f;
    const float* an = a + n * H * R;
    float* on = out + n * H * dh;
    for (int h = 0; h < H; ++h) {
      float sum[C] = {};
#pragma unroll
      for (int r = 0; r < kMaxR; ++r) {
        if (r >= R) break;
        const float w = an[h * R + r];  // the same address on every lane: one broadcast load
#pragma unroll
        for (int c = 0; c < C; ++c) sum[c] += w * bn[r][c];
      }
#pragma unroll
      for (int c = 0; c < C; ++c) on[h * dh + lane + 32 * c] = scale * sum[c];
    }
  }
}

// tpa_product_backward for float32, C = dh / 32 columns per lane, R ≤ kMaxR.
template <int kMaxR, int C>
__global__ void tpa_product_backward_registers(const float* a, const float* b, const float* gout, float* ga,
                                               float* gb, int64_t tokens, int H, int R, float scale) {
  constexpr int dh = 32 * C;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (int64_t n = int64_t(blockIdx.x) * warps + warp; n < tokens; n += int64_t(gridDim.x) * warps) {
    float bn[kMaxR][C], gbn[kMaxR][C];  // b[n, r, lane + 32c] and the sums of gb there
#pragma unroll
    for (int r = 0; r < kMaxR; ++r)
#pragma unroll
      for (int c = 0; c < C; ++c) bn[r][c] = r < R ? b[(n * R + r) * dh + lane + 32 * c] : 0.f, gbn[r][c] = 0.f;
    const float* an = a + n * H * R;
    const float* gn = gout + n * H * dh;
    for (int h = 0; h < H; ++h) {
      float g[C];
#pragma unroll
      for (int c = 0; c < C; ++c) g[c] = gn[h * dh + lane + 32 * c];
#pragma unroll
      for (int r = 0; r < kMaxR; ++r) {
        if (r >= R) break;
        // forward: out[h,j] = scale · Σ_r a[h,r]·b[r,j], so ga[h,r] = scale · Σ_j g[h,j]·b[r,j] ...
        const float w = an[h * R + r];
        float partial = 0.f;
#pragma unroll
        for (int c = 0; c < C; ++c) {
          partial += g[c] * bn[r][c];
          gbn[r][c] += w * g[c];  // ... and gb[r,j] = scale · Σ_h a[h,r]·g[h,j]
        }
        const float dot = warp_reduce(partial, Sum{});
        if (lane == 0) ga[n * H * R + h * R + r] = scale * dot;
      }
    }
#pragma unroll
    for (int r = 0; r < kMaxR; ++r) {
      if (r >= R) break;
#pragma unroll
      for (int c = 0; c < C; ++c) gb[(n * R + r) * dh + lane + 32 * c] = scale * gbn[r][c];
    }
  }
}

}  // namespace kernels

void CudaBackend::tpa_product_forward(const TPAProduct& p, const Tensor& a, const Tensor& b, Tensor& out) {
  const auto timing = timer_.time("tpa_product_forward");
  if (p.tokens == 0 || out.numel() == 0) return;
  const bool done = dispatch_registers(p, a.dtype(), [&](auto max_rank, auto columns) {
    kernels::tpa_product_forward_registers<decltype(max_rank)::value, decltype(columns)::value>
        <<<register_grid(p.tokens), 32 * kMaxTokenWarps, 0, stream_>>>(
            device_ptr<const float>(a), device_ptr<const float>(b), device_ptr<float>(out), p.tokens,
            static_cast<int>(p.heads), static_cast<int>(p.rank), static_cast<float>(p.scale));
    T6_CUDA_CHECK_LAUNCH(tpa_product_forward_registers);
  });
  if (done) return;
  dispatch_float("tpa_product_forward", a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const size_t per_warp = static_cast<size_t>(p.heads * p.rank + p.rank * p.head_dim) * sizeof(T);
    const TokenLaunch l = plan_launch(kernels::tpa_product_forward<T>, per_warp, p, "tpa_product_forward");
    kernels::tpa_product_forward<<<l.blocks, 32 * l.warps, l.bytes, stream_>>>(
        device_ptr<const T>(a), device_ptr<const T>(b), device_ptr<T>(out), p.tokens, static_cast<int>(p.heads),
        static_cast<int>(p.rank), static_cast<int>(p.head_dim), static_cast<T>(p.scale));
    T6_CUDA_CHECK_LAUNCH(tpa_product_forward);
  });
}

void CudaBackend::tpa_product_backward(const TPAProduct& p, const Tensor& a, const Tensor& b, const Tensor& gout,
                                       Tensor& ga, Tensor& gb) {
  const auto timing = timer_.time("tpa_product_backward");
  if (p.tokens == 0) return;
  const bool done = dispatch_registers(p, a.dtype(), [&](auto max_rank, auto columns) {
    kernels::tpa_product_backward_registers<decltype(max_rank)::value, decltype(columns)::value>
        <<<register_grid(p.tokens), 32 * kMaxTokenWarps, 0, stream_>>>(
            device_ptr<const float>(a), device_ptr<const float>(b), device_ptr<const float>(gout),
            device_ptr<float>(ga), device_ptr<float>(gb), p.tokens, static_cast<int>(p.heads),
            static_cast<int>(p.rank), static_cast<float>(p.scale));
    T6_CUDA_CHECK_LAUNCH(tpa_product_backward_registers);
  });
  if (done) return;
  dispatch_float("tpa_product_backward", a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const size_t per_warp = static_cast<size_t>(p.heads * p.rank + 2 * p.rank * p.head_dim) * sizeof(T);
    const TokenLaunch l = plan_launch(kernels::tpa_product_backward<T>, per_warp, p, "tpa_product_backward");
    kernels::tpa_product_backward<<<l.blocks, 32 * l.warps, l.bytes, stream_>>>(
        device_ptr<const T>(a), device_ptr<const T>(b), device_ptr<const T>(gout), device_ptr<T>(ga),
        device_ptr<T>(gb), p.tokens, static_cast<int>(p.heads), static_cast<int>(p.rank),
        static_cast<int>(p.head_dim), static_cast<T>(p.scale));
    T6_CUDA_CHECK_LAUNCH(tpa_product_backward);
  });
}

}  // namespace t6
