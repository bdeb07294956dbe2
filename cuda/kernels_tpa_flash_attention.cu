// TPA's fused causal attention on the GPU (the CPU twin is core/cpu/kernels_tpa_flash_attention.cpp; the
// shapes are in core/backend.h). Under bf16 mixed precision with head_dim 32, 64 or 128, each direction
// forms the bfloat16 heads (1/R) Σ_s A[t,h,s] B[t,s,:] from the float32 or bfloat16 factors with one
// kernel per q, k, v (tpa_heads_bf16: float32 sums rounded once, the numbers the composite's bfloat16
// copies of tpa_product's heads hold), runs the tensor-core flash attention kernels
// (cuda/flash_attention_tc.cuh) on them, and frees them: nothing [B,T,H,dh]-sized outlives the call, so
// backward keeps only the factors, out and lse. Backward forms the heads again, and the heads'
// gradients gq, gk, gv (float32, transient) are contracted onto the factors by tpa_product_backward
// (core/tpa_flash_by_heads.h).
//
// Forming each tile inside the attention kernels instead (a tile source in cuda/flash_attention_tc.cuh
// that sums the factors into shared memory) was measured first and lost: a block per (batch, head)
// reads the token's B rows (R·dh per token, shared by all H heads) once per head and per tile it
// visits, and the kernels became bound by those L2 reads (docs/PERF.md).
// float32 and float64 products, and shapes without a tensor-core kernel, take the by-heads composition
// of the plain kernels.
#include "core/tpa_flash_by_heads.h"
#include "cuda/flash_attention_tc.cuh"

namespace t6 {

namespace kernels {

// Eight consecutive values, 16-byte aligned, as float32.
__device__ __forceinline__ void load8(const float* at, float (&x)[8]) {
  const float4 lo = *reinterpret_cast<const float4*>(at), hi = *reinterpret_cast<const float4*>(at + 4);
  x[0] = lo.x, x[1] = lo.y, x[2] = lo.z, x[3] = lo.w, x[4] = hi.x, x[5] = hi.y, x[6] = hi.z, x[7] = hi.w;
}
__device__ __forceinline__ void load8(const bf16* at, float (&x)[8]) {
  const uint4 u = *reinterpret_cast<const uint4*>(at);
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int e = 0; e < 4; ++e) x[2 * e] = __uint_as_float(w[e] << 16), x[2 * e + 1] = __uint_as_float(w[e] & 0xffff0000u);
}
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }

// heads[n,h,:] = bf16(scale · Σ_s a[n,h,s] · b[n,s,:]) for every token n, a (N,H,rank), b (N,rank,dh),
// heads (N,H,dh); with rank 0, heads = bf16(b), b holding the heads (N,H,dh). One thread per 8 columns
// of a row (dh a multiple of 8, rows 16-byte aligned), in a grid-stride loop.
template <class F>
__global__ void tpa_heads_bf16(const F* a, const F* b, bf16* heads, int64_t rows, int H, int rank, int dh,
                               float scale) {
  const int chunks = dh / 8;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < rows * chunks;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = idx / chunks, token = row / H;  // row = token·H + h
    const int c = idx % chunks * 8;
    float sum[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (rank == 0) load8(b + row * dh + c, sum);
    for (int s = 0; s < rank; ++s) {
      const float w = scale * to_float(a[row * rank + s]);
      float x[8];
      load8(b + (token * rank + s) * dh + c, x);
#pragma unroll
      for (int e = 0; e < 8; ++e) sum[e] += w * x[e];
    }
    *reinterpret_cast<uint4*>(heads + row * dh + c) = make_uint4(pack_bf16(sum[0], sum[1]), pack_bf16(sum[2], sum[3]),
                                                                  pack_bf16(sum[4], sum[5]), pack_bf16(sum[6], sum[7]));
  }
}

}  // namespace kernels

namespace {

// The tensor-core path takes bf16 products at head_dim 32, 64 or 128 with float32 or bfloat16
// factors whose rows the 8-value loads can read (16-byte aligned starts).
bool bf16_heads_fit(const Backend::TPAFlashAttention& p, const Backend::TPAFactorTensors& f) {
  const DType dtype = f.b_k.dtype();
  if (!p.bf16_products || !(p.head_dim == 32 || p.head_dim == 64 || p.head_dim == 128) ||
      !(dtype == DType::F32 || dtype == DType::BF16) || !flash_tc::device_has_bf16_tensor_cores())
    return false;
  for (const Tensor* t : {&f.b_q, &f.b_k, &f.b_v})
    if (reinterpret_cast<uintptr_t>(t->raw_data()) % 16 != 0) return false;
  return true;
}

// The bfloat16 heads (B,T,H,dh) of one factor pair (rank 0: b holds the heads), formed by one kernel.
Tensor bf16_heads(cudaStream_t stream, const Backend::TPAFlashAttention& p, const Tensor& a, const Tensor& b,
                  int64_t rank) {
  Tensor heads = empty({p.batch, p.seq_len, p.heads, p.head_dim}, DType::BF16, Device::CUDA);
  const int64_t rows = p.batch * p.seq_len * p.heads;
  const auto launch = [&](auto zero) {
    using F = decltype(zero);
    kernels::tpa_heads_bf16<F><<<grid_for(rows * p.head_dim / 8), kThreads, 0, stream>>>(
        rank > 0 ? device_ptr<const F>(a) : nullptr, device_ptr<const F>(b), device_ptr<kernels::bf16>(heads), rows,
        static_cast<int>(p.heads), static_cast<int>(rank), static_cast<int>(p.head_dim),
        1.f / static_cast<float>(std::max<int64_t>(rank, 1)));
  };
  if (b.dtype() == DType::BF16) launch(kernels::bf16{});
  else launch(0.f);
  T6_CUDA_CHECK_LAUNCH(tpa_heads_bf16);
  return heads;
}

struct Bf16Heads {
  Tensor q, k, v;
  kernels::HeadTiles tiles() const {
    return {device_ptr<const kernels::bf16>(q), device_ptr<const kernels::bf16>(k), device_ptr<const kernels::bf16>(v)};
  }
};
Bf16Heads all_bf16_heads(cudaStream_t stream, const Backend::TPAFlashAttention& p, const Backend::TPAFactorTensors& f) {
  return {bf16_heads(stream, p, f.a_q, f.b_q, p.q_rank), bf16_heads(stream, p, f.a_k, f.b_k, p.rank),
          bf16_heads(stream, p, f.a_v, f.b_v, p.rank)};
}

}  // namespace

void CudaBackend::tpa_flash_attention_forward(const TPAFlashAttention& p, const TPAFactorTensors& f, Tensor& out,
                                              Tensor& lse) {
  if (!bf16_heads_fit(p, f)) return tpa_flash_attention_by_heads_forward(*this, p, f, out, lse);
  require_dtype("tpa_flash_attention_forward", out, DType::F32);
  require_dtype("tpa_flash_attention_forward", lse, DType::F32);
  Bf16Heads heads;
  {
    const auto timing = timer_.time("tpa_flash_attention heads bf16");
    heads = all_bf16_heads(stream_, p, f);
  }
  const auto timing = timer_.time("tpa_flash_attention_forward bf16");
  flash_tc::launch_forward(flash_tc::flash_shape(tpa_attention_shape(p)), heads.tiles(), out, lse, stream_);
}

void CudaBackend::tpa_flash_attention_backward(const TPAFlashAttention& p, const TPAFactorTensors& f,
                                               const Tensor& out, const Tensor& lse, const Tensor& gout,
                                               TPAFactorTensors& grads) {
  if (!bf16_heads_fit(p, f)) return tpa_flash_attention_by_heads_backward(*this, p, f, out, lse, gout, grads);
  require_dtype("tpa_flash_attention_backward", gout, DType::BF16);
  Bf16Heads heads;
  {
    const auto timing = timer_.time("tpa_flash_attention heads bf16");
    heads = all_bf16_heads(stream_, p, f);
  }
  const Shape shape{p.batch, p.seq_len, p.heads, p.head_dim};
  Tensor gq = empty(shape, DType::F32, Device::CUDA), gk = empty(shape, DType::F32, Device::CUDA),
         gv = empty(shape, DType::F32, Device::CUDA);
  {
    const auto timing = timer_.time("tpa_flash_attention_backward bf16");
    flash_tc::launch_backward(flash_tc::flash_shape(tpa_attention_shape(p)), heads.tiles(), out, lse, gout, gq, gk,
                              gv, stream_);
  }
  tpa_factor_gradients(*this, p, f, gq, gk, gv, grads);  // tpa_product_backward, timed as such
}

}  // namespace t6
