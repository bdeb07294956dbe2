// The fused decode step's kernels (core/backend.h, "fused decode step"): the few rows of a decode step
// (one new token per row) times a weight of float32 or its bfloat16 decode copy, with the step's small
// operations folded in, so that a layer is a handful of launches instead of dozens.
//
// At batch 1–8 a decode step is bound by reading the weights (and, before these kernels, by launching
// ~280 kernels). So every kernel here reads each weight element once for all rows of the batch: a warp
// takes two weight rows at a time, its lanes stride along K in 16-byte loads (8 bfloat16 or 8 float32
// per lane per step), and multiplies each load into the 1 to 8 rows of x, read through L1. The two rows
// are what the epilogue needs together: two neighbours of a plain product, SwiGLU's gate and up rows, or
// the pair of rows that RoPE rotates into each other. rms_norm folds in as a per-row scale of the
// products (rstd · W x = W (rstd · x)), computed by each block before it starts. Batches of more than 8
// rows take more blocks along grid y.
//
// Each kernel is launched as a dependent launch (cuda/dependent_launch.cuh): it starts while the kernel
// before it runs, asks L2 for its warps' first weight rows, and only then waits for its inputs.
#include <algorithm>
#include <initializer_list>
#include <type_traits>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/dependent_launch.cuh"
#include "cuda/kernel_utils.cuh"

namespace t6 {

namespace {

constexpr int kDecodeWarps = 8;  // warps per block
constexpr int kMaxRows = 8;      // rows of x per block (grid y covers more)

// Where the products of decode_tpa_factors go (core/backend.h): W's rows are [A_q | A_k | A_v | B_v]
// (`plain_rows`, stored as they are) then [Q | B_k] (rotated in pairs j, j + dh/2 of each row of dh),
// stored as O (float, or bf16 for a bf16 cache).
template <class O>
struct FactorOutputs {
  O *a_q, *q, *a_k, *b_k, *a_v, *b_v;
  const int32_t* positions;
  int64_t capacity, aq_rows, a_rows, b_rows, q_rows, plain_rows, head_dim;
};

}  // namespace

namespace kernels {

__device__ inline void load8(const float* p, float (&v)[8]) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(p)), b = __ldg(reinterpret_cast<const float4*>(p) + 1);
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

__device__ inline void load8(const __nv_bfloat16* p, float (&v)[8]) {
  const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    v[2 * i] = f.x, v[2 * i + 1] = f.y;
  }
}

// x's rows are read with plain loads, not __ldg: with dependent launch they were written by the kernel
// just before, which the read-only path does not promise to see.
__device__ inline void load8_written(const float* p, float (&v)[8]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

__device__ inline float widen(float w) { return w; }
__device__ inline float widen(__nv_bfloat16 w) { return __bfloat162float(w); }
__device__ inline void narrow(float v, float* out) { *out = v; }
__device__ inline void narrow(float v, __nv_bfloat16* out) { *out = __float2bfloat16(v); }

// acc[i][b] = Σ_k w[i][k] rows[b][k] for the NR weight rows w[i] (K each) and the first n ≤ BT rows of
// x (`rows`: their starts), returned to every lane of the warp. `vectors`: K % 8 == 0 and 16-byte
// aligned w and rows.
template <int NR, int BT, class W>
__device__ void dot_rows(const W* const (&w)[NR], const float* const* rows, int64_t K, int n, bool vectors,
                         float (&acc)[NR][BT]) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int i = 0; i < NR; ++i)
#pragma unroll
    for (int b = 0; b < BT; ++b) acc[i][b] = 0.f;
  const int64_t vector_end = vectors ? K : 0;
#pragma unroll 4  // a lane's loads of several steps in flight at once: K = 768 is 3 steps
  for (int64_t k = lane * 8; k < vector_end; k += 32 * 8) {
    float u[NR][8];
#pragma unroll
    for (int i = 0; i < NR; ++i) load8(w[i] + k, u[i]);
#pragma unroll
    for (int b = 0; b < BT; ++b) {
      if (b >= n) break;
      float xv[8];
      load8_written(rows[b] + k, xv);
#pragma unroll
      for (int i = 0; i < NR; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][b] += u[i][j] * xv[j];
    }
  }
  for (int64_t k = vector_end + lane; k < K; k += 32) {
    float u[NR];
#pragma unroll
    for (int i = 0; i < NR; ++i) u[i] = widen(w[i][k]);
#pragma unroll
    for (int b = 0; b < BT; ++b) {
      if (b >= n) break;
      const float xv = rows[b][k];
#pragma unroll
      for (int i = 0; i < NR; ++i) acc[i][b] += u[i] * xv;
    }
  }
#pragma unroll
  for (int i = 0; i < NR; ++i)
#pragma unroll
    for (int b = 0; b < BT; ++b) acc[i][b] = warp_reduce(acc[i][b], Sum{});
}

// dot_rows of the two rows w0 and w1.
template <int BT, class W>
__device__ void dot_two_rows(const W* w0, const W* w1, const float* const* rows, int64_t K, int n, bool vectors,
                             float (&acc)[2][BT]) {
  const W* const w[2] = {w0, w1};
  dot_rows<2, BT>(w, rows, K, n, vectors, acc);
}

// The rows of x a block multiplies, from row b0 on (up to BT, fewer at the end of the batch): into
// rows[b] their starts and into scale[b] their rstd (as rms_norm_forward computes it) when normalizing,
// else 1. With an embedding, row b is the embedding's row tokens[b0 + b], which block x = 0 also copies
// into `gathered` (B,K). Every thread of the block must call it (it synchronizes), after the wait for
// the kernel before.
template <int BT>
__device__ void block_rows(const float* x, const float* embedding, const int32_t* tokens, float* gathered, int64_t K,
                           int b0, int B, bool normalize, float eps, const float** rows, float* scale) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (threadIdx.x < BT && b0 + int(threadIdx.x) < B) {
    const int64_t b = b0 + threadIdx.x;
    rows[threadIdx.x] = embedding ? embedding + int64_t{tokens[b]} * K : x + b * K;
  }
  __syncthreads();
  const bool copy = embedding && blockIdx.x == 0;
  for (int b = warp; b < BT; b += kDecodeWarps) {
    float s = 1.f;
    if (b0 + b < B && (normalize || copy)) {
      const float* row = rows[b];
      float sum_squares = 0.f;
      for (int64_t k = lane; k < K; k += 32) {
        sum_squares += row[k] * row[k];
        if (copy) gathered[(b0 + b) * K + k] = row[k];
      }
      sum_squares = warp_reduce(sum_squares, Sum{});
      if (normalize) s = 1.f / sqrtf(sum_squares / static_cast<float>(K) + eps);
    }
    if (lane == 0) scale[b] = s;
  }
  __syncthreads();
}

// The start of every kernel here: L2 asked for the warp's first two weight rows (n0, n1 < rows of w),
// then the wait for the kernel before (cuda/dependent_launch.cuh).
template <class W>
__device__ void prefetch_then_wait(const W* w0, const W* w1, int64_t K, bool in_range) {
  if (in_range) prefetch_l2(w0, K * int64_t{sizeof(W)}), prefetch_l2(w1, K * int64_t{sizeof(W)});
  wait_for_previous_kernel();
  allow_next_kernel();
}

__device__ inline int64_t first_unit() { return int64_t(blockIdx.x) * kDecodeWarps + threadIdx.x / 32; }

// decode_linear: out[b,n] = residual[b,n] + scale[b] · Σ_k W[n,k] x[b,k]; a warp takes the NR rows
// NR·u … NR·u + NR − 1 (past N: the last row again, its product not stored).
template <int NR, int BT, class W>
__global__ void decode_linear(const float* x, const W* w, const float* residual, float* out, int B, int64_t N,
                              int64_t K, bool normalize, float eps, bool vectors) {
  __shared__ float scale[BT];
  __shared__ const float* rows[BT];
  const int b0 = blockIdx.y * BT, lane = threadIdx.x % 32, n_rows = min(BT, B - b0);
  const int64_t u0 = first_unit();
  prefetch_then_wait(w + min(NR * u0, N - 1) * K, w + min(NR * u0 + 1, N - 1) * K, K, NR * u0 < N);
  block_rows<BT>(x, nullptr, nullptr, nullptr, K, b0, B, normalize, eps, rows, scale);
  for (int64_t u = u0; u < (N + NR - 1) / NR; u += int64_t(gridDim.x) * kDecodeWarps) {
    const W* wr[NR];
#pragma unroll
    for (int i = 0; i < NR; ++i) wr[i] = w + min(NR * u + i, N - 1) * K;
    float acc[NR][BT];
    dot_rows<NR, BT>(wr, rows, K, n_rows, vectors, acc);
    if (lane != 0) continue;
#pragma unroll
    for (int b = 0; b < BT; ++b) {
      if (b >= n_rows) break;
      const int64_t row = (b0 + b) * N;
#pragma unroll
      for (int i = 0; i < NR; ++i) {
        const int64_t n = NR * u + i;
        if (n < N) out[row + n] = (residual ? residual[row + n] : 0.f) + scale[b] * acc[i][b];
      }
    }
  }
}

// decode_swiglu: out[b,f] = silu(scale[b] · gate[f]·x[b]) · scale[b] · up[f]·x[b]; a warp takes row f of both.
template <int BT, class W>
__global__ void decode_swiglu(const float* x, const W* gate, const W* up, float* out, int B, int64_t F, int64_t K,
                              bool normalize, float eps, bool vectors) {
  __shared__ float scale[BT];
  __shared__ const float* rows[BT];
  const int b0 = blockIdx.y * BT, lane = threadIdx.x % 32, n_rows = min(BT, B - b0);
  const int64_t f0 = first_unit();
  prefetch_then_wait(gate + min(f0, F - 1) * K, up + min(f0, F - 1) * K, K, f0 < F);
  block_rows<BT>(x, nullptr, nullptr, nullptr, K, b0, B, normalize, eps, rows, scale);
  for (int64_t f = f0; f < F; f += int64_t(gridDim.x) * kDecodeWarps) {
    float acc[2][BT];
    dot_two_rows<BT>(gate + f * K, up + f * K, rows, K, n_rows, vectors, acc);
    if (lane != 0) continue;
#pragma unroll
    for (int b = 0; b < BT; ++b) {
      if (b >= n_rows) break;
      const float g = scale[b] * acc[0][b];
      out[(b0 + b) * F + f] = g / (1.f + expf(-g)) * (scale[b] * acc[1][b]);
    }
  }
}

// One product of decode_tpa_factors, row n of W for batch row b, to its place (FactorOutputs).
template <class O>
__device__ inline void store_factor(const FactorOutputs<O>& o, int64_t n, int64_t b, float value) {
  const int64_t slot = b * o.capacity + o.positions[b];
  if (n < o.aq_rows) return narrow(value, o.a_q + b * o.aq_rows + n);
  n -= o.aq_rows;
  if (n < o.a_rows) return narrow(value, o.a_k + slot * o.a_rows + n);
  n -= o.a_rows;
  if (n < o.a_rows) return narrow(value, o.a_v + slot * o.a_rows + n);
  n -= o.a_rows;
  if (n < o.b_rows) return narrow(value, o.b_v + slot * o.b_rows + n);
  n -= o.b_rows;
  if (n < o.q_rows) return narrow(value, o.q + b * o.q_rows + n);
  n -= o.q_rows;
  narrow(value, o.b_k + slot * o.b_rows + n);
}

// The two rows of W that unit u of decode_tpa_factors multiplies: neighbouring plain rows, or the pair
// (j, j + dh/2) of a row of dh that RoPE rotates (then j is returned too).
template <class O>
__device__ inline bool factor_unit_rows(const FactorOutputs<O>& o, int64_t u, int64_t (&n)[2], int64_t& j) {
  const int64_t half = o.head_dim / 2, plain_units = (o.plain_rows + 1) / 2;
  if (u < plain_units) {
    n[0] = 2 * u, n[1] = 2 * u + 1 < o.plain_rows ? 2 * u + 1 : 2 * u, j = 0;
    return false;
  }
  const int64_t r = u - plain_units;
  j = r % half;
  n[0] = o.plain_rows + (r / half) * o.head_dim + j, n[1] = n[0] + half;
  return true;
}

// decode_tpa_factors: the plain rows in neighbouring pairs, then the rotated rows in RoPE's pairs
// (j, j + dh/2) of each row of dh, rotated by θ = position · 10000^(−2j/dh) before they are stored.
// With an embedding, x is first gathered from it (block_rows).
template <int BT, class W, class O>
__global__ void decode_tpa_factors(float* x, const float* embedding, const int32_t* tokens, const W* w,
                                   FactorOutputs<O> o, int B, int64_t N, int64_t K, float eps, bool vectors,
                                   RopeFrequencies freq) {
  __shared__ float scale[BT];
  __shared__ const float* rows[BT];
  const int b0 = blockIdx.y * BT, lane = threadIdx.x % 32, n_rows = min(BT, B - b0);
  const int64_t units = (o.plain_rows + 1) / 2 + (N - o.plain_rows) / 2, u0 = first_unit();
  int64_t n[2], j;
  factor_unit_rows(o, min(u0, units - 1), n, j);
  prefetch_then_wait(w + n[0] * K, w + n[1] * K, K, u0 < units);
  block_rows<BT>(x, embedding, tokens, x, K, b0, B, true, eps, rows, scale);
  for (int64_t u = u0; u < units; u += int64_t(gridDim.x) * kDecodeWarps) {
    const bool rotated = factor_unit_rows(o, u, n, j);
    float acc[2][BT];
    dot_two_rows<BT>(w + n[0] * K, w + n[1] * K, rows, K, n_rows, vectors, acc);
    if (lane != 0) continue;
#pragma unroll
    for (int b = 0; b < BT; ++b) {
      if (b >= n_rows) break;
      const float y0 = scale[b] * acc[0][b], y1 = scale[b] * acc[1][b];
      if (rotated) {
        float s, c;
        sincosf(static_cast<float>(o.positions[b0 + b]) * freq.inv[j], &s, &c);
        store_factor(o, n[0], b0 + b, y0 * c + y1 * s);
        store_factor(o, n[1], b0 + b, -y0 * s + y1 * c);
      } else {
        store_factor(o, n[0], b0 + b, y0);
        if (n[1] != n[0]) store_factor(o, n[1], b0 + b, y1);
      }
    }
  }
}

}  // namespace kernels

namespace {

// Calls launch(rows) with rows the compile-time rows of x per block for a batch of B: 1, 2, 4 or 8.
template <class Launch>
void for_batch(int64_t B, Launch&& launch) {
  if (B == 1) launch(std::integral_constant<int, 1>{});
  else if (B == 2) launch(std::integral_constant<int, 2>{});
  else if (B <= 4) launch(std::integral_constant<int, 4>{});
  else launch(std::integral_constant<int, kMaxRows>{});
}

dim3 decode_grid(int64_t units, int64_t B, int rows) {
  const int64_t blocks = std::clamp<int64_t>((units + kDecodeWarps - 1) / kDecodeWarps, 1, 1 << 16);
  return dim3(static_cast<unsigned>(blocks), static_cast<unsigned>((B + rows - 1) / rows));
}

// Calls fn(W{}) with W the weight's element type: float or __nv_bfloat16.
template <class Fn>
void dispatch_weight(const char* kernel, const Tensor& w, Fn&& fn) {
  if (w.dtype() == DType::F32) fn(float{});
  else if (w.dtype() == DType::BF16) fn(__nv_bfloat16{});
  else throw Error(cat("cuda ", kernel, ": weights of dtype ", dtype_name(w.dtype()),
                       " are not supported; use float32 or its bfloat16 copy"));
}

bool vector_loads(const Tensor& x, const Tensor& w, int64_t K) { return K % 8 == 0 && aligned(x, 16) && aligned(w, 16); }

}  // namespace

void CudaBackend::decode_linear(const Tensor& x, const Tensor& w, const Tensor& residual,
                                std::optional<double> norm_eps, Tensor& out) {
  const auto timing = timer_.time("decode_linear");
  require_dtype("decode_linear", x, DType::F32);
  require_dtype("decode_linear (out)", out, DType::F32);
  if (residual.defined()) require_dtype("decode_linear (residual)", residual, DType::F32);
  const int64_t K = x.shape().back(), B = x.numel() / K, N = out.numel() / B;
  if (B == 0 || N == 0) return;
  // A warp's rows share each load of x: four at a batch of 5–8, where the loads of x through L1 would
  // outnumber the weight's 8 to 1 with two, as long as the product still gives every multiprocessor a
  // block (the head); else two, for more warps in flight.
  static const int64_t sms = device_attribute(cudaDevAttrMultiProcessorCount);
  const bool four = B > 4 && N >= 4 * kDecodeWarps * sms;
  dispatch_weight("decode_linear", w, [&](auto wt) {
    using W = decltype(wt);
    for_batch(B, [&](auto rows) {
      constexpr int BT = decltype(rows)::value;
      auto launch = [&](auto kernel, int64_t per_warp) {
        launch_dependent(kernel, decode_grid((N + per_warp - 1) / per_warp, B, BT), dim3(32 * kDecodeWarps), 0,
                         stream_, device_ptr<const float>(x), device_ptr<const W>(w),
                         residual.defined() ? device_ptr<const float>(residual) : nullptr, device_ptr<float>(out),
                         static_cast<int>(B), N, K, norm_eps.has_value(), static_cast<float>(norm_eps.value_or(0)),
                         vector_loads(x, w, K));
      };
      if (four) launch(kernels::decode_linear<4, BT, W>, 4);
      else launch(kernels::decode_linear<2, BT, W>, 2);
    });
  });
}

void CudaBackend::decode_swiglu(const Tensor& x, const Tensor& gate, const Tensor& up, std::optional<double> norm_eps,
                                Tensor& out) {
  const auto timing = timer_.time("decode_swiglu");
  require_dtype("decode_swiglu", x, DType::F32);
  require_dtype("decode_swiglu (out)", out, DType::F32);
  T6_CHECK(gate.dtype() == up.dtype(), "cuda decode_swiglu: gate is ", dtype_name(gate.dtype()), " but up ",
           dtype_name(up.dtype()));
  const int64_t K = x.shape().back(), B = x.numel() / K, F = out.numel() / B;
  if (B == 0 || F == 0) return;
  dispatch_weight("decode_swiglu", gate, [&](auto wt) {
    using W = decltype(wt);
    for_batch(B, [&](auto rows) {
      constexpr int BT = decltype(rows)::value;
      launch_dependent(kernels::decode_swiglu<BT, W>, decode_grid(F, B, BT), dim3(32 * kDecodeWarps), 0, stream_,
                       device_ptr<const float>(x), device_ptr<const W>(gate), device_ptr<const W>(up),
                       device_ptr<float>(out), static_cast<int>(B), F, K, norm_eps.has_value(),
                       static_cast<float>(norm_eps.value_or(0)), vector_loads(x, gate, K) && aligned(up, 16));
    });
  });
}

namespace {

// The outputs of decode_tpa_factors as O (float or bf16), where each goes (core/backend.h).
template <class O>
FactorOutputs<O> factor_outputs(const Backend::TPAFactors& p, const Tensor& positions, Tensor& a_q, Tensor& q,
                                Tensor& a_k, Tensor& b_k, Tensor& a_v, Tensor& b_v) {
  FactorOutputs<O> o;
  o.a_q = p.q_rank > 0 ? device_ptr<O>(a_q) : nullptr;
  o.q = device_ptr<O>(q), o.a_k = device_ptr<O>(a_k), o.b_k = device_ptr<O>(b_k);
  o.a_v = device_ptr<O>(a_v), o.b_v = device_ptr<O>(b_v);
  o.positions = device_ptr<const int32_t>(positions);
  o.capacity = p.capacity, o.head_dim = p.head_dim;
  o.aq_rows = p.heads * p.q_rank, o.a_rows = p.heads * p.rank, o.b_rows = p.rank * p.head_dim;
  o.q_rows = p.q_rank > 0 ? p.q_rank * p.head_dim : p.heads * p.head_dim;
  o.plain_rows = o.aq_rows + 2 * o.a_rows + o.b_rows;
  return o;
}

}  // namespace

void CudaBackend::decode_tpa_factors(const TPAFactors& p, Tensor& x, const Tensor& embedding, const Tensor& tokens,
                                     const Tensor& w, const Tensor& positions, Tensor& a_q, Tensor& q, Tensor& a_k,
                                     Tensor& b_k, Tensor& a_v, Tensor& b_v) {
  const auto timing = timer_.time("decode_tpa_factors");
  require_dtype("decode_tpa_factors", x, DType::F32);
  // float32 outputs, or bfloat16 ones for a bfloat16 cache
  const DType out = q.dtype() == DType::BF16 ? DType::BF16 : DType::F32;
  for (const Tensor* t : std::initializer_list<const Tensor*>{&q, &a_k, &b_k, &a_v, &b_v})
    require_dtype("decode_tpa_factors (outputs)", *t, out);
  if (p.q_rank > 0) require_dtype("decode_tpa_factors (a_q)", a_q, out);
  require_dtype("decode_tpa_factors (positions)", positions, DType::I32);
  if (embedding.defined()) {
    require_dtype("decode_tpa_factors (embedding)", embedding, DType::F32);
    require_dtype("decode_tpa_factors (tokens)", tokens, DType::I32);
  }
  T6_CHECK(p.head_dim % 2 == 0, "cuda decode_tpa_factors: head dimension ", p.head_dim,
           " must be even (RoPE rotates its two halves)");
  const int64_t B = p.batch, K = p.d;
  if (B == 0) return;
  const int64_t q_rows = p.q_rank > 0 ? p.q_rank * p.head_dim : p.heads * p.head_dim;
  const int64_t plain_rows = p.heads * p.q_rank + 2 * p.heads * p.rank + p.rank * p.head_dim;
  const int64_t N = plain_rows + q_rows + p.rank * p.head_dim;
  const int64_t units = (plain_rows + 1) / 2 + (N - plain_rows) / 2;
  const RopeFrequencies freq = rope_frequencies("decode_tpa_factors", p.head_dim);
  const bool vectors = vector_loads(x, w, K) && (!embedding.defined() || aligned(embedding, 16));
  auto launch = [&](auto ot) {
    using O = decltype(ot);
    const FactorOutputs<O> o = factor_outputs<O>(p, positions, a_q, q, a_k, b_k, a_v, b_v);
    dispatch_weight("decode_tpa_factors", w, [&](auto wt) {
      using W = decltype(wt);
      for_batch(B, [&](auto rows) {
        constexpr int BT = decltype(rows)::value;
        launch_dependent(kernels::decode_tpa_factors<BT, W, O>, decode_grid(units, B, BT), dim3(32 * kDecodeWarps),
                         0, stream_, device_ptr<float>(x),
                         embedding.defined() ? device_ptr<const float>(embedding) : nullptr,
                         embedding.defined() ? device_ptr<const int32_t>(tokens) : nullptr, device_ptr<const W>(w), o,
                         static_cast<int>(B), N, K, static_cast<float>(p.norm_eps), vectors, freq);
      });
    });
  };
  if (out == DType::BF16) launch(__nv_bfloat16{});
  else launch(float{});
}

}  // namespace t6
