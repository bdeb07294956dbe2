// TPA-native fused causal attention on the GPU (the CPU twin is core/cpu/kernels_tpa_flash_attention.cpp;
// the shapes are in core/backend.h). Under bf16 mixed precision with head_dim 32, 64 or 128 the
// tensor-core flash attention kernels (cuda/flash_attention_tc.cuh) run with a tile source that forms
// every q, k and v tile in shared memory from the factors: row i of head h's tile is
// (1/R) Σ_s A[i,h,s] · B[i,s,:], summed in float32 from float32 or bfloat16 factors and rounded to
// bfloat16, the same numbers as the composite's bfloat16 copies of tpa_product's heads. So the heads
// are never written to device memory, the casts to bfloat16 go, and B (R·dh per token, shared by all
// H heads) is read from L2 by the blocks of the token's heads.
//
// Backward runs the same tensor-core backward kernels on those tiles; they write the heads' gradients
// gq, gk, gv (float32, transient), which tpa_product_backward contracts onto the factors
// (core/tpa_flash_by_heads.h). Contracting inside the key/query walks instead needs a sum over heads
// for gb (Σ_h A[t,h,s] gk[t,h,:]), which a block per (batch, head) cannot finish alone; that is the
// next step (docs/PERF.md). float32 and float64 products, and shapes without a tensor-core kernel,
// take the by-heads composition of the plain kernels.
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

// Fills a bf16 [kRows][DH + 8] tile with `rows` heads h of tokens token0, token0 + 1, … (zeros after):
// row r = scale · Σ_s a[t,h,s] · b[t,s,:] for t = token0 + r, a (…,H,rank) and b (…,rank,DH); with
// rank 0, row r = b[t,h,:] (b holds the heads, (…,H,DH)). Each thread sums 8 columns of a row.
template <int DH, int kRows, int kThreads, class F>
__device__ void form_head_tile(const F* a, const F* b, int rank, float scale, int64_t token0, int heads, int h,
                               int rows, bf16* tile) {
  constexpr int kChunks = DH / 8, kPerThread = kRows * kChunks / kThreads;
  uint4 packed[kPerThread];
#pragma unroll
  for (int u = 0; u < kPerThread; ++u) {
    const int idx = u * kThreads + threadIdx.x, r = idx / kChunks, c = idx % kChunks * 8;
    float row[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    const int64_t t = token0 + r;
    if (r < rows && rank == 0) load8(b + (t * heads + h) * DH + c, row);
    for (int s = 0; r < rows && s < rank; ++s) {
      const float w = scale * to_float(a[(t * heads + h) * rank + s]);
      float x[8];
      load8(b + (t * rank + s) * DH + c, x);
#pragma unroll
      for (int e = 0; e < 8; ++e) row[e] += w * x[e];
    }
    packed[u] = make_uint4(pack_bf16(row[0], row[1]), pack_bf16(row[2], row[3]), pack_bf16(row[4], row[5]),
                           pack_bf16(row[6], row[7]));
  }
#pragma unroll
  for (int u = 0; u < kPerThread; ++u) {
    const int idx = u * kThreads + threadIdx.x;
    *reinterpret_cast<uint4*>(tile + idx / kChunks * TcTile<DH>::kLd + idx % kChunks * 8) = packed[u];
  }
}

// The tile source (cuda/flash_attention_tc.cuh) that forms the heads from TPA's factors of dtype F.
template <class F>
struct FactorTiles {
  const F *a_q, *b_q, *a_k, *b_k, *a_v, *b_v;
  int q_rank, rank;  // q_rank 0: b_q holds the query heads
  template <int DH, int kRows, int kThreads>
  __device__ void load_q(const FlashShape& p, int b, int h, int i0, int rows, bf16* tile) const {
    form_head_tile<DH, kRows, kThreads>(a_q, b_q, q_rank, 1.f / float(max(q_rank, 1)), int64_t(b) * p.q_len + i0,
                                        p.heads, h, rows, tile);
  }
  template <int DH, int kRows, int kThreads>
  __device__ void load_k(const FlashShape& p, int b, int hk, int j0, int rows, bf16* tile) const {
    form_head_tile<DH, kRows, kThreads>(a_k, b_k, rank, 1.f / float(rank), int64_t(b) * p.kv_len + j0, p.kv_heads,
                                        hk, rows, tile);
  }
  template <int DH, int kRows, int kThreads>
  __device__ void load_v(const FlashShape& p, int b, int hk, int j0, int rows, bf16* tile) const {
    form_head_tile<DH, kRows, kThreads>(a_v, b_v, rank, 1.f / float(rank), int64_t(b) * p.kv_len + j0, p.kv_heads,
                                        hk, rows, tile);
  }
};

}  // namespace kernels

namespace {

// The tensor-core path takes bf16 products at head_dim 32, 64 or 128 with float32 or bfloat16
// factors whose rows the 8-value loads can read (16-byte aligned starts).
bool factor_tiles_fit(const Backend::TPAFlashAttention& p, const Backend::TPAFactorTensors& f) {
  const DType dtype = f.b_k.dtype();
  if (!p.bf16_products || !(p.head_dim == 32 || p.head_dim == 64 || p.head_dim == 128) ||
      !(dtype == DType::F32 || dtype == DType::BF16) || !flash_tc::device_has_bf16_tensor_cores())
    return false;
  for (const Tensor* t : {&f.b_q, &f.b_k, &f.b_v})
    if (reinterpret_cast<uintptr_t>(t->raw_data()) % 16 != 0) return false;
  return true;
}

// Calls fn with the factors as a kernels::FactorTiles of their dtype.
template <class Fn>
void with_factor_tiles(const Backend::TPAFlashAttention& p, const Backend::TPAFactorTensors& f, Fn&& fn) {
  const auto tiles = [&](auto zero) {
    using F = decltype(zero);
    const auto at = [](const Tensor& t) { return t.defined() ? device_ptr<const F>(t) : nullptr; };
    fn(kernels::FactorTiles<F>{at(f.a_q), at(f.b_q), at(f.a_k), at(f.b_k), at(f.a_v), at(f.b_v),
                               static_cast<int>(p.q_rank), static_cast<int>(p.rank)});
  };
  if (f.b_k.dtype() == DType::BF16) tiles(kernels::bf16{});
  else tiles(0.f);
}

}  // namespace

void CudaBackend::tpa_flash_attention_forward(const TPAFlashAttention& p, const TPAFactorTensors& f, Tensor& out,
                                              Tensor& lse) {
  if (!factor_tiles_fit(p, f)) return tpa_flash_attention_by_heads_forward(*this, p, f, out, lse);
  const auto timing = timer_.time("tpa_flash_attention_forward bf16");
  require_dtype("tpa_flash_attention_forward", out, DType::F32);
  require_dtype("tpa_flash_attention_forward", lse, DType::F32);
  const kernels::FlashShape shape = flash_tc::flash_shape(tpa_attention_shape(p));
  with_factor_tiles(p, f, [&](const auto& tiles) { flash_tc::launch_forward(shape, tiles, out, lse, stream_); });
}

void CudaBackend::tpa_flash_attention_backward(const TPAFlashAttention& p, const TPAFactorTensors& f,
                                               const Tensor& out, const Tensor& lse, const Tensor& gout,
                                               TPAFactorTensors& grads) {
  if (!factor_tiles_fit(p, f)) return tpa_flash_attention_by_heads_backward(*this, p, f, out, lse, gout, grads);
  require_dtype("tpa_flash_attention_backward", gout, DType::BF16);
  const Shape heads{p.batch, p.seq_len, p.heads, p.head_dim};
  Tensor gq = empty(heads, DType::F32, Device::CUDA), gk = empty(heads, DType::F32, Device::CUDA),
         gv = empty(heads, DType::F32, Device::CUDA);
  {
    const auto timing = timer_.time("tpa_flash_attention_backward bf16");  // the contraction below times itself
    const kernels::FlashShape shape = flash_tc::flash_shape(tpa_attention_shape(p));
    with_factor_tiles(p, f, [&](const auto& tiles) {
      flash_tc::launch_backward(shape, tiles, out, lse, gout, gq, gk, gv, stream_);
    });
  }
  tpa_factor_gradients(*this, p, f, gq, gk, gv, grads);
}

}  // namespace t6
