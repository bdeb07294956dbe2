// Helpers shared by the kernel files: typed device pointers, launch sizes, the dtype checks that turn
// an unsupported dtype into a clear error, and the warp/block reductions of the row kernels.
#pragma once
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/tensor.h"
#include "cuda/cuda_check.h"

namespace t6 {

template <class T>
T* device_ptr(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

// Softmax kernels work in base 2 (exp2f is one instruction): exp(x) = 2^(x·log2 e), ln y = log2 y · ln 2.
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Elementwise kernels loop with a grid stride, so the grid only needs to fill the GPU.
constexpr int kThreads = 256;
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 65536));
}

// Row kernels give each row one block; rows shorter than the block leave threads idle, so the block
// is the row length rounded up to a warp, at most 512 threads.
inline int row_threads(int64_t row_length) {
  return static_cast<int>(std::clamp<int64_t>((row_length + 31) / 32 * 32, 32, 512));
}
inline unsigned row_grid(int64_t rows) { return static_cast<unsigned>(std::clamp<int64_t>(rows, 1, 1 << 20)); }

// An attribute of the backend's GPU (the current device, which the backend set), e.g. its
// multiprocessor count.
inline int device_attribute(cudaDeviceAttr attribute) {
  int device = 0, value = 0;
  T6_CUDA_CHECK(cudaGetDevice(&device));
  T6_CUDA_CHECK(cudaDeviceGetAttribute(&value, attribute, device));
  return value;
}

// Whether a tensor's data starts on a multiple of `bytes`, as the kernels with 8- or 16-byte accesses
// need (allocations are aligned; views at an offset may not be).
inline bool aligned(const Tensor& t, size_t bytes) {
  return reinterpret_cast<uintptr_t>(t.raw_data()) % bytes == 0;
}

inline void require_dtype(const char* kernel, const Tensor& t, DType dtype) {
  T6_CHECK(t.dtype() == dtype, "cuda ", kernel, ": dtype ", dtype_name(t.dtype()),
           " is not supported by the CUDA backend here; this kernel takes ", dtype_name(dtype));
}

// Calls fn(T{}) with T the C++ type of a float32 or float64 tensor; other dtypes are an error.
template <class Fn>
void dispatch_float(const char* kernel, DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::F32: fn(float{}); return;
    case DType::F64: fn(double{}); return;
    default:
      throw Error(cat("cuda ", kernel, ": dtype ", dtype_name(dtype),
                      " is not supported by the CUDA backend; use float32 or float64"));
  }
}

// Calls fn(T{}) with T the C++ type of any dtype (bfloat16 as __nv_bfloat16).
template <class Fn>
void dispatch_any(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::F32: fn(float{}); return;
    case DType::F64: fn(double{}); return;
    case DType::I32: fn(int32_t{}); return;
    case DType::BF16: fn(__nv_bfloat16{}); return;
  }
}

// RoPE's frequencies 10000^(−2j/dh), j < dh/2, for kernels that rotate (rope, decode_tpa_factors). They
// come from the host's std::pow, exactly the CPU backend's table, and travel to the kernel by value:
// CUDA's powf may differ from the host's by a few ulp, and at t ≈ 1000 one ulp of a frequency is already
// 1e-4 of angle.
constexpr int64_t kMaxRopeHalf = 512;  // head dimensions up to 1024

struct RopeFrequencies {
  float inv[kMaxRopeHalf];
};

inline RopeFrequencies rope_frequencies(const char* kernel, int64_t dh) {
  T6_CHECK(dh / 2 <= kMaxRopeHalf, "cuda ", kernel, ": head dimension ", dh,
           " is larger than the CUDA backend's limit of ", 2 * kMaxRopeHalf);
  RopeFrequencies freq{};
  for (int64_t j = 0; j < dh / 2; ++j)
    freq.inv[j] = std::pow(10000.f, -static_cast<float>(2 * j) / static_cast<float>(dh));
  return freq;
}

namespace kernels {

// Stores four float32 values as group i (elements 4i..4i+3) of a float32 array, one 16-byte store, or of
// a bfloat16 array (mixed precision's product inputs), rounded to nearest even, one 8-byte store.
__device__ inline void store4(float* out, int64_t i, float4 v) { reinterpret_cast<float4*>(out)[i] = v; }
__device__ inline void store4(__nv_bfloat16* out, int64_t i, float4 v) {
  const __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
  reinterpret_cast<uint2*>(out)[i] = make_uint2(*reinterpret_cast<const uint32_t*>(&lo),
                                                *reinterpret_cast<const uint32_t*>(&hi));
}

struct Sum {
  template <class T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct Max {
  template <class T>
  __device__ T operator()(T a, T b) const {
    return a > b ? a : b;
  }
};

template <class T, class Op>
__device__ T warp_reduce(T value, Op op) {
  for (int offset = 16; offset > 0; offset /= 2) value = op(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}

// Reduces one value per thread over the block and returns the result to every thread. blockDim.x is a
// multiple of 32; every thread of the block must call it (it synchronizes).
template <class T, class Op>
__device__ T block_reduce(T value, Op op, T identity) {
  __shared__ T partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  value = warp_reduce(value, op);
  __syncthreads();  // a previous call's readers of `partial` are done
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  value = lane < warps ? partial[lane] : identity;
  return warp_reduce(value, op);
}

}  // namespace kernels

}  // namespace t6
