// TPA's per-token factor product, forward and backward, float32 and float64 (the CPU twin is
// core/cpu_kernels_tpa_product.cpp; the shapes are in core/backend.h).
//
// Every token n has factors a[n] (H×R) and b[n] (R×dh) and gets heads out[n] = scale · a[n]·b[n]
// (H×dh). R is 1 to a few, so this is memory traffic, not arithmetic: at the paper's small T6 a token
// reads 196–588 factor values and writes 2,176 head values. A block takes one token at a time (a
// grid-stride loop over tokens), stages its factors in shared memory, and its threads write the heads
// in order, so every global read and write is coalesced. cuBLAS ran the same work as 16,384 tiny
// batched gemms, then a separate pass applied the 1/R.
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_utils.cuh"

namespace t6 {

namespace {

constexpr int kTokenThreads = 128;
constexpr size_t kDefaultSharedLimit = 48 * 1024;  // dynamic shared memory allowed without opting in

unsigned token_grid(int64_t tokens) { return static_cast<unsigned>(std::clamp<int64_t>(tokens, 1, 1 << 20)); }

// Allows `kernel` `bytes` of dynamic shared memory, or throws naming the shape that needs too much.
template <class Kernel>
void allow_shared_memory(Kernel kernel, size_t bytes, const Backend::TPAProduct& p, const char* what) {
  if (bytes <= kDefaultSharedLimit) return;
  const size_t limit = static_cast<size_t>(device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin));
  T6_CHECK(bytes <= limit, "cuda ", what, ": one token's factors and heads (H=", p.heads, ", R=", p.rank,
           ", dh=", p.head_dim, ") need ", bytes, " bytes of shared memory, more than this GPU's ", limit,
           "; use fewer heads or a smaller head_dim");
  T6_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

}  // namespace

namespace kernels {

// Copies n values from global to shared memory with the whole block.
template <class T>
__device__ void stage(const T* from, T* to, int n) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) to[i] = from[i];
}

// tpa_product_forward: out[n, h, j] = scale · Σ_r a[n, h, r] · b[n, r, j]
template <class T>
__global__ void tpa_product_forward(const T* a, const T* b, T* out, int64_t tokens, int H, int R, int dh, T scale) {
  extern __shared__ __align__(16) unsigned char shared[];
  T* a_s = reinterpret_cast<T*>(shared);  // (H,R)
  T* b_s = a_s + H * R;                   // (R,dh)
  for (int64_t n = blockIdx.x; n < tokens; n += gridDim.x) {
    __syncthreads();  // the previous token's readers are done
    stage(a + n * H * R, a_s, H * R);
    stage(b + n * R * dh, b_s, R * dh);
    __syncthreads();
    T* on = out + n * H * dh;
    for (int e = threadIdx.x; e < H * dh; e += blockDim.x) {
      const int h = e / dh, j = e - h * dh;
      T sum = 0;
      for (int r = 0; r < R; ++r) sum += a_s[h * R + r] * b_s[r * dh + j];
      on[e] = scale * sum;
    }
  }
}

// tpa_product_backward: with g = d out, ga[n] = scale · g[n]·b[n]ᵀ and gb[n] = scale · a[n]ᵀ·g[n].
template <class T>
__global__ void tpa_product_backward(const T* a, const T* b, const T* gout, T* ga, T* gb, int64_t tokens, int H,
                                     int R, int dh, T scale) {
  extern __shared__ __align__(16) unsigned char shared[];
  T* a_s = reinterpret_cast<T*>(shared);  // (H,R)
  T* b_s = a_s + H * R;                   // (R,dh)
  T* g_s = b_s + R * dh;                  // (H,dh)
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (int64_t n = blockIdx.x; n < tokens; n += gridDim.x) {
    __syncthreads();
    stage(a + n * H * R, a_s, H * R);
    stage(b + n * R * dh, b_s, R * dh);
    stage(gout + n * H * dh, g_s, H * dh);
    __syncthreads();
    // forward: out[h,j] = scale · Σ_r a[h,r]·b[r,j], so gb[r,j] = scale · Σ_h a[h,r]·g[h,j]:
    // consecutive threads take consecutive j, reading consecutive g_s words
    for (int e = threadIdx.x; e < R * dh; e += blockDim.x) {
      const int r = e / dh, j = e - r * dh;
      T sum = 0;
      for (int h = 0; h < H; ++h) sum += a_s[h * R + r] * g_s[h * dh + j];
      gb[n * R * dh + e] = scale * sum;
    }
    // ... and ga[h,r] = scale · Σ_j g[h,j]·b[r,j]: a warp per head row, its lanes along j
    for (int h = warp; h < H; h += warps) {
      for (int r = 0; r < R; ++r) {
        T partial = 0;
        for (int j = lane; j < dh; j += 32) partial += g_s[h * dh + j] * b_s[r * dh + j];
        const T dot = warp_reduce(partial, Sum{});
        if (lane == 0) ga[n * H * R + h * R + r] = scale * dot;
      }
    }
  }
}

}  // namespace kernels

void CudaBackend::tpa_product_forward(const TPAProduct& p, const Tensor& a, const Tensor& b, Tensor& out) {
  const auto timing = timer_.time("tpa_product_forward");
  if (p.tokens == 0 || out.numel() == 0) return;
  dispatch_float("tpa_product_forward", a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const size_t bytes = static_cast<size_t>(p.heads * p.rank + p.rank * p.head_dim) * sizeof(T);
    allow_shared_memory(kernels::tpa_product_forward<T>, bytes, p, "tpa_product_forward");
    kernels::tpa_product_forward<<<token_grid(p.tokens), kTokenThreads, bytes, stream_>>>(
        device_ptr<const T>(a), device_ptr<const T>(b), device_ptr<T>(out), p.tokens, static_cast<int>(p.heads),
        static_cast<int>(p.rank), static_cast<int>(p.head_dim), static_cast<T>(p.scale));
    T6_CUDA_CHECK_LAUNCH(tpa_product_forward);
  });
}

void CudaBackend::tpa_product_backward(const TPAProduct& p, const Tensor& a, const Tensor& b, const Tensor& gout,
                                       Tensor& ga, Tensor& gb) {
  const auto timing = timer_.time("tpa_product_backward");
  if (p.tokens == 0) return;
  dispatch_float("tpa_product_backward", a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const size_t bytes =
        static_cast<size_t>(p.heads * p.rank + p.rank * p.head_dim + p.heads * p.head_dim) * sizeof(T);
    allow_shared_memory(kernels::tpa_product_backward<T>, bytes, p, "tpa_product_backward");
    kernels::tpa_product_backward<<<token_grid(p.tokens), kTokenThreads, bytes, stream_>>>(
        device_ptr<const T>(a), device_ptr<const T>(b), device_ptr<const T>(gout), device_ptr<T>(ga),
        device_ptr<T>(gb), p.tokens, static_cast<int>(p.heads), static_cast<int>(p.rank),
        static_cast<int>(p.head_dim), static_cast<T>(p.scale));
    T6_CUDA_CHECK_LAUNCH(tpa_product_backward);
  });
}

}  // namespace t6
