// Fused causal attention on the GPU (FlashAttention-2; the CPU twin is
// core/cpu_kernels_flash_attention.cpp, the shapes are in core/backend.h). Two families of kernels:
//
// * Tensor-core kernels (`*_tc`), for float32 tensors under bf16 mixed precision with head_dim 32, 64
//   or 128: 4 warps take a 64×64 tile; q, k, v (and in backward the output gradient and the
//   probabilities) are rounded to bfloat16 in shared memory and multiplied with WMMA 16×16×16
//   fragments, accumulating in float32. Scores, the online softmax and all bookkeeping are float32.
// * Plain kernels (`*_simt`), for float32 and float64 at any head_dim ≤ 128: one thread per query
//   (or key) row, exact in the tensor's own precision. They serve plain fp32 training and the tests.
//
// Forward: each block owns 64 query rows and walks the key tiles up to the causal limit, keeping per
// row the running max m, the running sum l of exp(s − m) and the unnormalised output O; a new tile
// that raises the max rescales l and O by exp(m_old − m_new). At the end out = O / l and
// lse = m + log l, the one number per row that backward needs to recompute P = exp(s − lse).
// Backward runs three kernels: D_i = gout_i · out_i per row; then gk, gv with one block per 64 keys
// walking the query tiles that see them; then gq with one block per 64 queries walking the keys.
// Splitting gq from gk/gv recomputes the scores once more but needs no atomics, so results are
// deterministic.
#include <mma.h>

#include <climits>
#include <cmath>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_utils.cuh"

namespace t6 {

namespace kernels {

using bf16 = __nv_bfloat16;
namespace wmma = nvcuda::wmma;

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// The sizes every kernel needs, as ints (checked on the host) plus the derived offsets.
struct FlashShape {
  int batch, q_len, kv_len, heads, kv_heads, head_dim;
  int group;   // query heads per key/value head
  int offset;  // kv_len − q_len: query i sits at position i + offset
  double scale;
  __device__ int64_t q_row(int b, int i, int h) const { return ((int64_t(b) * q_len + i) * heads + h) * head_dim; }
  __device__ int64_t kv_row(int b, int j, int hk) const {
    return ((int64_t(b) * kv_len + j) * kv_heads + hk) * head_dim;
  }
  __device__ int64_t lse_index(int b, int h, int i) const { return (int64_t(b) * heads + h) * q_len + i; }
};

template <class T>
__device__ T exp_of(T x) {
  return exp(x);
}
template <class T>
__device__ T log_of(T x) {
  return log(x);
}

// Rows handled by one block of the plain kernels (one thread each).
constexpr int kSimtRows = 64;
// Keys per shared-memory tile of the plain kernels: 16 KiB per tile of k (and again for v).
template <class T, int DH>
struct SimtKeys {
  static constexpr int kPerTile = 16384 / (DH * int(sizeof(T)));
  static constexpr int value = kPerTile < 64 ? kPerTile : 64;
};

// Copies `rows` rows of `dh` numbers (row i at src + i·stride) into a [tile_rows][DH] shared tile,
// zero-filling columns ≥ dh and rows ≥ rows so padded lanes add nothing.
template <class T, int DH>
__device__ void load_rows(const T* src, int64_t stride, int rows, int tile_rows, int dh, T* dst) {
  for (int idx = threadIdx.x; idx < tile_rows * DH; idx += blockDim.x) {
    const int r = idx / DH, c = idx % DH;
    dst[idx] = (r < rows && c < dh) ? src[r * stride + c] : T(0);
  }
}

// --- plain kernels -------------------------------------------------------------------------------

// flash_attention_forward, one thread per query row. Grid (B·H, query tiles), the last tile first.
template <class T, int DH>
__global__ void __launch_bounds__(kSimtRows) flash_attention_forward_simt(FlashShape p, const T* q, const T* k,
                                                                            const T* v, T* out, T* lse) {
  constexpr int kKeys = SimtKeys<T, DH>::value;
  __shared__ T k_tile[kKeys * DH], v_tile[kKeys * DH];
  const int b = blockIdx.x / p.heads, h = blockIdx.x % p.heads, hk = h / p.group;
  const int i0 = (gridDim.y - 1 - blockIdx.y) * kSimtRows, i = i0 + threadIdx.x;
  const bool active = i < p.q_len;
  const int position = i + p.offset;
  T q_row[DH], acc[DH];
#pragma unroll
  for (int d = 0; d < DH; ++d) {
    q_row[d] = active && d < p.head_dim ? q[p.q_row(b, i, h) + d] * T(p.scale) : T(0);  // scale folded into q
    acc[d] = 0;
  }
  T running_max = -INFINITY, sum = 0;
  const int last_key = min(p.kv_len - 1, i0 + kSimtRows - 1 + p.offset);  // the block's last visible key
  for (int j0 = 0; j0 <= last_key; j0 += kKeys) {
    __syncthreads();  // the previous tile is no longer read
    const int rows = min(kKeys, p.kv_len - j0);
    load_rows<T, DH>(k + p.kv_row(b, j0, hk), int64_t(p.kv_heads) * p.head_dim, rows, kKeys, p.head_dim, k_tile);
    load_rows<T, DH>(v + p.kv_row(b, j0, hk), int64_t(p.kv_heads) * p.head_dim, rows, kKeys, p.head_dim, v_tile);
    __syncthreads();
    const int visible = active ? min(rows, position - j0 + 1) : 0;  // keys j ≤ position in this tile
    for (int jj = 0; jj < visible; ++jj) {
      T s = 0;
#pragma unroll
      for (int d = 0; d < DH; ++d) s += q_row[d] * k_tile[jj * DH + d];  // s = scale · q·k_j
      if (s > running_max) {  // a new max: rescale what was summed against the old one
        const T c = exp_of(running_max - s);
        sum *= c;
#pragma unroll
        for (int d = 0; d < DH; ++d) acc[d] *= c;
        running_max = s;
      }
      const T e = exp_of(s - running_max);
      sum += e;
#pragma unroll
      for (int d = 0; d < DH; ++d) acc[d] += e * v_tile[jj * DH + d];
    }
  }
  if (!active) return;
#pragma unroll
  for (int d = 0; d < DH; ++d) {  // unrolled over DH: a register array takes only constant indices
    if (d < p.head_dim) out[p.q_row(b, i, h) + d] = acc[d] / sum;
  }
  lse[p.lse_index(b, h, i)] = running_max + log_of(sum);
}

// D_i = gout_i · out_i for every query row (the softmax backward's row term). One warp per row.
template <class T>
__global__ void flash_attention_backward_rowdot(FlashShape p, const T* out, const T* gout, T* row_dot) {
  const int64_t rows = int64_t(p.batch) * p.q_len * p.heads;
  const int lane = threadIdx.x % 32;
  for (int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; row < rows;
       row += int64_t(gridDim.x) * blockDim.x / 32) {
    T dot = 0;
    for (int d = lane; d < p.head_dim; d += 32) dot += out[row * p.head_dim + d] * gout[row * p.head_dim + d];
    dot = warp_reduce(dot, Sum{});
    // row = (b·Tq + i)·H + h, and D is stored like lse, as (b, h, i)
    const int h = row % p.heads, i = (row / p.heads) % p.q_len, b = row / (int64_t(p.heads) * p.q_len);
    if (lane == 0) row_dot[p.lse_index(b, h, i)] = dot;
  }
}

// gq_i = scale Σ_j P_ij (gout_i·v_j − D_i) k_j, one thread per query row. Grid as in forward.
template <class T, int DH>
__global__ void __launch_bounds__(kSimtRows) flash_attention_backward_dq_simt(FlashShape p, const T* q, const T* k,
                                                                                const T* v, const T* lse,
                                                                                const T* row_dot, const T* gout,
                                                                                T* gq) {
  constexpr int kKeys = SimtKeys<T, DH>::value;
  __shared__ T k_tile[kKeys * DH], v_tile[kKeys * DH];
  const int b = blockIdx.x / p.heads, h = blockIdx.x % p.heads, hk = h / p.group;
  const int i0 = (gridDim.y - 1 - blockIdx.y) * kSimtRows, i = i0 + threadIdx.x;
  const bool active = i < p.q_len;
  const int position = i + p.offset;
  T q_row[DH], g_row[DH], dq[DH];
#pragma unroll
  for (int d = 0; d < DH; ++d) {
    q_row[d] = active && d < p.head_dim ? q[p.q_row(b, i, h) + d] * T(p.scale) : T(0);
    g_row[d] = active && d < p.head_dim ? gout[p.q_row(b, i, h) + d] : T(0);
    dq[d] = 0;
  }
  const T lse_i = active ? lse[p.lse_index(b, h, i)] : T(0), D_i = active ? row_dot[p.lse_index(b, h, i)] : T(0);
  const int last_key = min(p.kv_len - 1, i0 + kSimtRows - 1 + p.offset);
  for (int j0 = 0; j0 <= last_key; j0 += kKeys) {
    __syncthreads();
    const int rows = min(kKeys, p.kv_len - j0);
    load_rows<T, DH>(k + p.kv_row(b, j0, hk), int64_t(p.kv_heads) * p.head_dim, rows, kKeys, p.head_dim, k_tile);
    load_rows<T, DH>(v + p.kv_row(b, j0, hk), int64_t(p.kv_heads) * p.head_dim, rows, kKeys, p.head_dim, v_tile);
    __syncthreads();
    const int visible = active ? min(rows, position - j0 + 1) : 0;
    for (int jj = 0; jj < visible; ++jj) {
      T s = 0, gp = 0;
#pragma unroll
      for (int d = 0; d < DH; ++d) {
        s += q_row[d] * k_tile[jj * DH + d];   // s_ij = scale · q_i·k_j
        gp += g_row[d] * v_tile[jj * DH + d];  // gP_ij = gout_i · v_j
      }
      const T gs = exp_of(s - lse_i) * (gp - D_i);  // gs_ij = P_ij (gP_ij − D_i)
#pragma unroll
      for (int d = 0; d < DH; ++d) dq[d] += gs * k_tile[jj * DH + d];
    }
  }
  if (!active) return;
#pragma unroll
  for (int d = 0; d < DH; ++d) {
    if (d < p.head_dim) gq[p.q_row(b, i, h) + d] = dq[d] * T(p.scale);  // ∂s/∂q = scale · k
  }
}

// gk_j = scale Σ_i gs_ij q_i and gv_j = Σ_i P_ij gout_i over the group's query heads, one thread per
// key row; the block's keys sit in shared memory (padded rows: each thread reads its own), the
// queries and output gradients stream through in tiles that every thread reads in step (broadcast).
// Grid (B·Hkv, key tiles of kSimtRows), the first keys (which most queries see) first.
template <class T, int DH>
__global__ void __launch_bounds__(kSimtRows) flash_attention_backward_dkdv_simt(FlashShape p, const T* q, const T* k,
                                                                                  const T* v, const T* lse,
                                                                                  const T* row_dot, const T* gout,
                                                                                  T* gk, T* gv) {
  constexpr int kQueries = 16, kPad = DH + 1;
  extern __shared__ __align__(16) unsigned char simt_shared[];
  T* k_own = reinterpret_cast<T*>(simt_shared);  // [kSimtRows][DH + 1]
  T* v_own = k_own + kSimtRows * kPad;
  T* q_tile = v_own + kSimtRows * kPad;  // [kQueries][DH]
  T* g_tile = q_tile + kQueries * DH;
  T* lse_tile = g_tile + kQueries * DH;  // [kQueries]
  T* dot_tile = lse_tile + kQueries;
  const int b = blockIdx.x / p.kv_heads, hk = blockIdx.x % p.kv_heads;
  const int j0 = blockIdx.y * kSimtRows, j = j0 + threadIdx.x;
  const bool active = j < p.kv_len;
  const int64_t q_stride = int64_t(p.heads) * p.head_dim;
  for (int idx = threadIdx.x; idx < kSimtRows * DH; idx += blockDim.x) {
    const int r = idx / DH, c = idx % DH;
    const bool in = j0 + r < p.kv_len && c < p.head_dim;
    k_own[r * kPad + c] = in ? k[p.kv_row(b, j0 + r, hk) + c] * T(p.scale) : T(0);  // scale folded into k
    v_own[r * kPad + c] = in ? v[p.kv_row(b, j0 + r, hk) + c] : T(0);
  }
  T dk[DH], dv[DH];
#pragma unroll
  for (int d = 0; d < DH; ++d) dk[d] = dv[d] = 0;
  const int first_query = max(0, j0 - p.offset);  // the first query whose position reaches key j0
  for (int h = hk * p.group; h < (hk + 1) * p.group; ++h) {
    for (int i0 = first_query; i0 < p.q_len; i0 += kQueries) {
      __syncthreads();  // the previous tile is no longer read (and, the first time, k_own is written)
      const int rows = min(kQueries, p.q_len - i0);
      load_rows<T, DH>(q + p.q_row(b, i0, h), q_stride, rows, kQueries, p.head_dim, q_tile);
      load_rows<T, DH>(gout + p.q_row(b, i0, h), q_stride, rows, kQueries, p.head_dim, g_tile);
      if (threadIdx.x < kQueries) {
        const bool in = i0 + threadIdx.x < p.q_len;
        lse_tile[threadIdx.x] = in ? lse[p.lse_index(b, h, i0 + threadIdx.x)] : T(0);
        dot_tile[threadIdx.x] = in ? row_dot[p.lse_index(b, h, i0 + threadIdx.x)] : T(0);
      }
      __syncthreads();
      if (!active) continue;
      for (int ii = max(0, j - p.offset - i0); ii < rows; ++ii) {  // queries with position ≥ j
        T s = 0, gp = 0;
#pragma unroll
        for (int d = 0; d < DH; ++d) {
          s += k_own[threadIdx.x * kPad + d] * q_tile[ii * DH + d];   // s_ij = scale · q_i·k_j
          gp += v_own[threadIdx.x * kPad + d] * g_tile[ii * DH + d];  // gP_ij = gout_i · v_j
        }
        const T prob = exp_of(s - lse_tile[ii]);    // P_ij, recomputed
        const T gs = prob * (gp - dot_tile[ii]);  // gs_ij = P_ij (gP_ij − D_i)
#pragma unroll
        for (int d = 0; d < DH; ++d) {
          dv[d] += prob * g_tile[ii * DH + d];  // out_i = Σ_j P_ij v_j
          dk[d] += gs * q_tile[ii * DH + d];
        }
      }
    }
  }
  if (!active) return;
#pragma unroll
  for (int d = 0; d < DH; ++d) {
    if (d >= p.head_dim) continue;
    gk[p.kv_row(b, j, hk) + d] = dk[d] * T(p.scale);  // ∂s/∂k = scale · q
    gv[p.kv_row(b, j, hk) + d] = dv[d];
  }
}

// --- tensor-core kernels (bf16 inputs, fp32 accumulation) -----------------------------------------

constexpr int kTile = 64;          // query rows and keys per tile
constexpr int kTcThreads = 128;    // 4 warps, 16 rows each
template <int DH>
struct TcLayout {
  static constexpr int kLdHead = DH + 8;     // bf16 head rows; the padding staggers shared-memory banks
  static constexpr int kLdScore = kTile + 4;  // fp32 score rows
  static constexpr int kLdProb = kTile + 8;   // bf16 probability rows
  static constexpr int kLdAcc = DH + 4;       // fp32 output rows
  static constexpr int kHeadTile = kTile * kLdHead;    // elements
  static constexpr int kScoreTile = kTile * kLdScore;
  static constexpr int kProbTile = kTile * kLdProb;
  static constexpr int kAccTile = kTile * kLdAcc;
};

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragBRow = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;
using FragBCol = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;
using FragAcc = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// Loads `rows` rows of DH floats (row r at src + r·stride) into a bf16 [kTile][ld] tile, zero rows
// past `rows`. 16-byte loads when the addresses allow (they do for contiguous heads of dh % 4 == 0).
template <int DH>
__device__ void load_head_tile(const float* src, int64_t stride, int rows, bf16* dst, int ld) {
  const bool vectors = ((reinterpret_cast<uintptr_t>(src) | (stride * sizeof(float))) % 16) == 0;
  for (int idx = threadIdx.x; idx < kTile * DH / 4; idx += blockDim.x) {
    const int r = idx / (DH / 4), c = idx % (DH / 4) * 4;
    float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
    if (r < rows) {
      const float* at = src + r * stride + c;
      x = vectors ? *reinterpret_cast<const float4*>(at) : make_float4(at[0], at[1], at[2], at[3]);
    }
    bf16* to = dst + r * ld + c;
    to[0] = __float2bfloat16(x.x);
    to[1] = __float2bfloat16(x.y);
    to[2] = __float2bfloat16(x.z);
    to[3] = __float2bfloat16(x.w);
  }
}

// C (16 × 16·N, fp32, row stride ldc) = A (16 × 16·K, row-major) · B, where B (16·K × 16·N) is read
// row-major from b_rows (element (k, n) at b[k·ldb + n]) or, with kBColumns, as the transpose of a
// row-major matrix (element (k, n) at b[n·ldb + k]: B = Mᵀ for M stored row by row).
template <int K, int N, bool kBColumns>
__device__ void warp_matmul_store(const bf16* a, int lda, const bf16* b, int ldb, float* c, int ldc) {
  FragA fa[K];
#pragma unroll
  for (int kk = 0; kk < K; ++kk) wmma::load_matrix_sync(fa[kk], a + kk * 16, lda);
#pragma unroll
  for (int n = 0; n < N; ++n) {
    FragAcc acc;
    wmma::fill_fragment(acc, 0.f);
#pragma unroll
    for (int kk = 0; kk < K; ++kk) {
      if constexpr (kBColumns) {
        FragBCol fb;
        wmma::load_matrix_sync(fb, b + n * 16 * ldb + kk * 16, ldb);
        wmma::mma_sync(acc, fa[kk], fb, acc);
      } else {
        FragBRow fb;
        wmma::load_matrix_sync(fb, b + kk * 16 * ldb + n * 16, ldb);
        wmma::mma_sync(acc, fa[kk], fb, acc);
      }
    }
    wmma::store_matrix_sync(c + n * 16, acc, ldc, wmma::mem_row_major);
  }
}

// acc[n] += A (16 × 64, row-major bf16) · B (64 × 16·N, row-major bf16): the accumulators stay in
// registers across tiles.
template <int N>
__device__ void warp_matmul_accumulate(const bf16* a, int lda, const bf16* b, int ldb, FragAcc (&acc)[N]) {
#pragma unroll
  for (int kk = 0; kk < kTile / 16; ++kk) {
    FragA fa;
    wmma::load_matrix_sync(fa, a + kk * 16, lda);
#pragma unroll
    for (int n = 0; n < N; ++n) {
      FragBRow fb;
      wmma::load_matrix_sync(fb, b + kk * 16 * ldb + n * 16, ldb);
      wmma::mma_sync(acc[n], fa, fb, acc[n]);
    }
  }
}

// Writes a warp's 16 rows of accumulators (times `factor`) to rows row0… of a float32 tensor (row r at
// dst + r·stride), through the warp's part of a staging tile; rows ≥ rows_valid are dropped.
template <int DH>
__device__ void store_warp_rows(FragAcc (&acc)[DH / 16], float factor, float* staging, int row0, int rows_valid,
                                float* dst, int64_t stride) {
  constexpr int ld = TcLayout<DH>::kLdAcc;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int n = 0; n < DH / 16; ++n) {
    for (int t = 0; t < acc[n].num_elements; ++t) acc[n].x[t] *= factor;
    wmma::store_matrix_sync(staging + warp * 16 * ld + n * 16, acc[n], ld, wmma::mem_row_major);
  }
  __syncwarp();
  for (int r = 0; r < 16; ++r) {
    const int row = warp * 16 + r;
    if (row0 + row >= rows_valid) break;
    for (int d = lane; d < DH; d += 32) dst[(row0 + row) * stride + d] = staging[row * ld + d];
  }
}

// flash_attention_forward on tensor cores. Grid (B·H, query tiles, the last tile first); shared
// memory: q, k, v tiles (bf16), the warp's scores (fp32), probabilities (bf16) and output (fp32).
template <int DH>
__global__ void __launch_bounds__(kTcThreads) flash_attention_forward_tc(FlashShape p, const float* q,
                                                                          const float* k, const float* v,
                                                                          float* out, float* lse) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // never launched: below compute capability 8.0 the host picks the plain kernels
#else
  using L = TcLayout<DH>;
  extern __shared__ __align__(128) unsigned char tc_shared[];
  bf16* q_tile = reinterpret_cast<bf16*>(tc_shared);
  bf16* k_tile = q_tile + L::kHeadTile;
  bf16* v_tile = k_tile + L::kHeadTile;
  float* scores = reinterpret_cast<float*>(v_tile + L::kHeadTile);
  bf16* probs = reinterpret_cast<bf16*>(scores + L::kScoreTile);
  float* acc = reinterpret_cast<float*>(probs + L::kProbTile);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int b = blockIdx.x / p.heads, h = blockIdx.x % p.heads, hk = h / p.group;
  const int i0 = (gridDim.y - 1 - blockIdx.y) * kTile;
  const int64_t q_stride = int64_t(p.heads) * DH, kv_stride = int64_t(p.kv_heads) * DH;
  const float scale_log2 = static_cast<float>(p.scale) * kLog2e;  // softmax in base 2: exp(x) = 2^(x·log2 e)

  load_head_tile<DH>(q + p.q_row(b, i0, h), q_stride, min(kTile, p.q_len - i0), q_tile, L::kLdHead);
  for (int idx = threadIdx.x; idx < L::kAccTile; idx += blockDim.x) acc[idx] = 0.f;
  float row_max[16], row_sum[16];  // of the warp's 16 rows, in base 2; every lane keeps the same copy
#pragma unroll
  for (int r = 0; r < 16; ++r) row_max[r] = -INFINITY, row_sum[r] = 0.f;

  const int last_key = min(p.kv_len - 1, i0 + kTile - 1 + p.offset);
  for (int j0 = 0; j0 <= last_key; j0 += kTile) {
    __syncthreads();  // every warp is done with the previous k and v tiles
    load_head_tile<DH>(k + p.kv_row(b, j0, hk), kv_stride, min(kTile, p.kv_len - j0), k_tile, L::kLdHead);
    load_head_tile<DH>(v + p.kv_row(b, j0, hk), kv_stride, min(kTile, p.kv_len - j0), v_tile, L::kLdHead);
    __syncthreads();
    // S_w = Q_w Kᵀ: the warp's 16 rows against the 64 keys
    float* s_w = scores + warp * 16 * L::kLdScore;
    bf16* p_w = probs + warp * 16 * L::kLdProb;
    float* o_w = acc + warp * 16 * L::kLdAcc;
    warp_matmul_store<DH / 16, kTile / 16, true>(q_tile + warp * 16 * L::kLdHead, L::kLdHead, k_tile, L::kLdHead, s_w,
                                                 L::kLdScore);
    __syncwarp();
    // Online softmax, one row at a time across the warp (lane holds keys lane and lane + 32).
#pragma unroll
    for (int r = 0; r < 16; ++r) {
      const int position = i0 + warp * 16 + r + p.offset;
      const int ja = j0 + lane, jb = j0 + lane + 32;
      const float sa = ja <= position && ja < p.kv_len ? s_w[r * L::kLdScore + lane] * scale_log2 : -INFINITY;
      const float sb = jb <= position && jb < p.kv_len ? s_w[r * L::kLdScore + lane + 32] * scale_log2 : -INFINITY;
      const float new_max = fmaxf(row_max[r], warp_reduce(fmaxf(sa, sb), Max{}));
      const float ref = new_max == -INFINITY ? 0.f : new_max;  // a row with no visible key yet stays 0
      const float pa = exp2f(sa - ref), pb = exp2f(sb - ref);
      const float rescale = exp2f(row_max[r] - ref);
      row_sum[r] = row_sum[r] * rescale + warp_reduce(pa + pb, Sum{});
      row_max[r] = new_max;
      p_w[r * L::kLdProb + lane] = __float2bfloat16(pa);
      p_w[r * L::kLdProb + lane + 32] = __float2bfloat16(pb);
      for (int d = lane; d < DH; d += 32) o_w[r * L::kLdAcc + d] *= rescale;
    }
    __syncwarp();
    // O_w += P_w V
#pragma unroll
    for (int n = 0; n < DH / 16; ++n) {
      FragAcc o;
      wmma::load_matrix_sync(o, o_w + n * 16, L::kLdAcc, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kTile / 16; ++kk) {
        FragA fa;
        FragBRow fb;
        wmma::load_matrix_sync(fa, p_w + kk * 16, L::kLdProb);
        wmma::load_matrix_sync(fb, v_tile + kk * 16 * L::kLdHead + n * 16, L::kLdHead);
        wmma::mma_sync(o, fa, fb, o);
      }
      wmma::store_matrix_sync(o_w + n * 16, o, L::kLdAcc, wmma::mem_row_major);
    }
    __syncwarp();
  }
  // out = O / l, lse = ln(2) · (m + log2 l)
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    const int i = i0 + warp * 16 + r;
    if (i >= p.q_len) break;
    const float inv = 1.f / row_sum[r];
    for (int d = lane; d < DH; d += 32) out[p.q_row(b, i, h) + d] = acc[(warp * 16 + r) * L::kLdAcc + d] * inv;
    if (lane == 0) lse[p.lse_index(b, h, i)] = (row_max[r] + log2f(row_sum[r])) * kLn2;
  }
#endif
}

// Recomputes a warp's 16×64 block of P and gS from its scores S and gP = gout·v products (fp32, in
// place of the shared tiles) and writes them as bf16: P = exp(scale·s − lse) where visible, else 0;
// gS = P (gP − D). `key_rows` says whether the 16 rows are keys (Sᵀ, the gk/gv kernel) or queries.
template <int DH, bool kKeyRows>
__device__ void probabilities_and_score_grads(const FlashShape& p, const float* s_w, const float* gp_w, int row0,
                                              int col0, const float* lse_log2, const float* row_dot, bf16* p_w,
                                              bf16* gs_w, float scale_log2) {
  using L = TcLayout<DH>;
  const int lane = threadIdx.x % 32;
  for (int r = 0; r < 16; ++r) {
    for (int c = lane; c < kTile; c += 32) {
      const int query = kKeyRows ? col0 + c : row0 + r, key = kKeyRows ? row0 + r : col0 + c;
      const int qi = kKeyRows ? c : r;  // where this query's lse and D sit in the block's tables
      const bool visible = query < p.q_len && key < p.kv_len && key <= query + p.offset;
      const float prob = visible ? exp2f(s_w[r * L::kLdScore + c] * scale_log2 - lse_log2[qi]) : 0.f;
      p_w[r * L::kLdProb + c] = __float2bfloat16(prob);
      gs_w[r * L::kLdProb + c] = __float2bfloat16(prob * (gp_w[r * L::kLdScore + c] - row_dot[qi]));
    }
  }
}

// gk and gv on tensor cores: one block per 64 keys of one key/value head, walking every query tile
// of the group's heads that sees them. Per tile each warp forms, for its 16 keys,
//   Sᵀ = K Qᵀ and gPᵀ = V goutᵀ  →  Pᵀ, gSᵀ  →  gV += Pᵀ gout, gK += gSᵀ Q   (scale applied at the end).
template <int DH>
__global__ void __launch_bounds__(kTcThreads) flash_attention_backward_dkdv_tc(FlashShape p, const float* q,
                                                                                const float* k, const float* v,
                                                                                const float* lse, const float* row_dot,
                                                                                const float* gout, float* gk,
                                                                                float* gv) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // never launched: below compute capability 8.0 the host picks the plain kernels
#else
  using L = TcLayout<DH>;
  extern __shared__ __align__(128) unsigned char tc_shared[];
  bf16* k_tile = reinterpret_cast<bf16*>(tc_shared);
  bf16* v_tile = k_tile + L::kHeadTile;
  bf16* q_tile = v_tile + L::kHeadTile;
  bf16* g_tile = q_tile + L::kHeadTile;
  float* scores = reinterpret_cast<float*>(g_tile + L::kHeadTile);  // Sᵀ, then gPᵀ right after it
  float* prob_grads = scores + L::kScoreTile;
  bf16* probs = reinterpret_cast<bf16*>(prob_grads + L::kScoreTile);
  bf16* score_grads = probs + L::kProbTile;
  float* lse_log2 = reinterpret_cast<float*>(score_grads + L::kProbTile);  // [kTile]
  float* dots = lse_log2 + kTile;                                           // [kTile]
  const int warp = threadIdx.x / 32;
  const int b = blockIdx.x / p.kv_heads, hk = blockIdx.x % p.kv_heads;
  const int j0 = blockIdx.y * kTile;
  const int64_t q_stride = int64_t(p.heads) * DH, kv_stride = int64_t(p.kv_heads) * DH;
  const float scale_log2 = static_cast<float>(p.scale) * kLog2e;

  load_head_tile<DH>(k + p.kv_row(b, j0, hk), kv_stride, min(kTile, p.kv_len - j0), k_tile, L::kLdHead);
  load_head_tile<DH>(v + p.kv_row(b, j0, hk), kv_stride, min(kTile, p.kv_len - j0), v_tile, L::kLdHead);
  FragAcc dk[DH / 16], dv[DH / 16];
#pragma unroll
  for (int n = 0; n < DH / 16; ++n) wmma::fill_fragment(dk[n], 0.f), wmma::fill_fragment(dv[n], 0.f);
  float* s_w = scores + warp * 16 * L::kLdScore;
  float* gp_w = prob_grads + warp * 16 * L::kLdScore;
  bf16* p_w = probs + warp * 16 * L::kLdProb;
  bf16* gs_w = score_grads + warp * 16 * L::kLdProb;

  const int first_query = max(0, j0 - p.offset) / kTile * kTile;
  for (int h = hk * p.group; h < (hk + 1) * p.group; ++h) {
    for (int i0 = first_query; i0 < p.q_len; i0 += kTile) {
      __syncthreads();  // every warp is done with the previous q and gout tiles
      const int rows = min(kTile, p.q_len - i0);
      load_head_tile<DH>(q + p.q_row(b, i0, h), q_stride, rows, q_tile, L::kLdHead);
      load_head_tile<DH>(gout + p.q_row(b, i0, h), q_stride, rows, g_tile, L::kLdHead);
      for (int c = threadIdx.x; c < kTile; c += blockDim.x) {
        lse_log2[c] = c < rows ? lse[p.lse_index(b, h, i0 + c)] * kLog2e : INFINITY;
        dots[c] = c < rows ? row_dot[p.lse_index(b, h, i0 + c)] : 0.f;
      }
      __syncthreads();
      warp_matmul_store<DH / 16, kTile / 16, true>(k_tile + warp * 16 * L::kLdHead, L::kLdHead, q_tile, L::kLdHead,
                                                   s_w, L::kLdScore);  // Sᵀ = K Qᵀ
      warp_matmul_store<DH / 16, kTile / 16, true>(v_tile + warp * 16 * L::kLdHead, L::kLdHead, g_tile, L::kLdHead,
                                                   gp_w, L::kLdScore);  // gPᵀ = V goutᵀ
      __syncwarp();
      probabilities_and_score_grads<DH, true>(p, s_w, gp_w, j0 + warp * 16, i0, lse_log2, dots, p_w, gs_w,
                                              scale_log2);
      __syncwarp();
      warp_matmul_accumulate<DH / 16>(p_w, L::kLdProb, g_tile, L::kLdHead, dv);   // gV += Pᵀ gout
      warp_matmul_accumulate<DH / 16>(gs_w, L::kLdProb, q_tile, L::kLdHead, dk);  // gK += gSᵀ Q
    }
  }
  // The score tiles are free now; each warp stages its own 16 rows there (2·kScoreTile ≥ kAccTile).
  __syncthreads();
  store_warp_rows<DH>(dk, static_cast<float>(p.scale), scores, j0, p.kv_len, gk + p.kv_row(b, 0, hk), kv_stride);
  __syncwarp();
  store_warp_rows<DH>(dv, 1.f, scores, j0, p.kv_len, gv + p.kv_row(b, 0, hk), kv_stride);
#endif
}

// gq on tensor cores: one block per 64 queries of one head, walking the visible key tiles:
//   S = Q Kᵀ and gP = gout Vᵀ  →  P, gS  →  gQ += gS K   (scale applied at the end).
template <int DH>
__global__ void __launch_bounds__(kTcThreads) flash_attention_backward_dq_tc(FlashShape p, const float* q,
                                                                              const float* k, const float* v,
                                                                              const float* lse, const float* row_dot,
                                                                              const float* gout, float* gq) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // never launched: below compute capability 8.0 the host picks the plain kernels
#else
  using L = TcLayout<DH>;
  extern __shared__ __align__(128) unsigned char tc_shared[];
  bf16* q_tile = reinterpret_cast<bf16*>(tc_shared);
  bf16* g_tile = q_tile + L::kHeadTile;
  bf16* k_tile = g_tile + L::kHeadTile;
  bf16* v_tile = k_tile + L::kHeadTile;
  float* scores = reinterpret_cast<float*>(v_tile + L::kHeadTile);
  float* prob_grads = scores + L::kScoreTile;
  bf16* probs = reinterpret_cast<bf16*>(prob_grads + L::kScoreTile);
  bf16* score_grads = probs + L::kProbTile;
  float* lse_log2 = reinterpret_cast<float*>(score_grads + L::kProbTile);
  float* dots = lse_log2 + kTile;
  const int warp = threadIdx.x / 32;
  const int b = blockIdx.x / p.heads, h = blockIdx.x % p.heads, hk = h / p.group;
  const int i0 = (gridDim.y - 1 - blockIdx.y) * kTile;
  const int64_t q_stride = int64_t(p.heads) * DH, kv_stride = int64_t(p.kv_heads) * DH;
  const float scale_log2 = static_cast<float>(p.scale) * kLog2e;
  const int rows = min(kTile, p.q_len - i0);

  load_head_tile<DH>(q + p.q_row(b, i0, h), q_stride, rows, q_tile, L::kLdHead);
  load_head_tile<DH>(gout + p.q_row(b, i0, h), q_stride, rows, g_tile, L::kLdHead);
  for (int c = threadIdx.x; c < kTile; c += blockDim.x) {
    lse_log2[c] = c < rows ? lse[p.lse_index(b, h, i0 + c)] * kLog2e : INFINITY;
    dots[c] = c < rows ? row_dot[p.lse_index(b, h, i0 + c)] : 0.f;
  }
  FragAcc dq[DH / 16];
#pragma unroll
  for (int n = 0; n < DH / 16; ++n) wmma::fill_fragment(dq[n], 0.f);
  float* s_w = scores + warp * 16 * L::kLdScore;
  float* gp_w = prob_grads + warp * 16 * L::kLdScore;
  bf16* p_w = probs + warp * 16 * L::kLdProb;
  bf16* gs_w = score_grads + warp * 16 * L::kLdProb;

  const int last_key = min(p.kv_len - 1, i0 + kTile - 1 + p.offset);
  for (int j0 = 0; j0 <= last_key; j0 += kTile) {
    __syncthreads();
    load_head_tile<DH>(k + p.kv_row(b, j0, hk), kv_stride, min(kTile, p.kv_len - j0), k_tile, L::kLdHead);
    load_head_tile<DH>(v + p.kv_row(b, j0, hk), kv_stride, min(kTile, p.kv_len - j0), v_tile, L::kLdHead);
    __syncthreads();
    warp_matmul_store<DH / 16, kTile / 16, true>(q_tile + warp * 16 * L::kLdHead, L::kLdHead, k_tile, L::kLdHead,
                                                 s_w, L::kLdScore);  // S = Q Kᵀ
    warp_matmul_store<DH / 16, kTile / 16, true>(g_tile + warp * 16 * L::kLdHead, L::kLdHead, v_tile, L::kLdHead,
                                                 gp_w, L::kLdScore);  // gP = gout Vᵀ
    __syncwarp();
    probabilities_and_score_grads<DH, false>(p, s_w, gp_w, i0 + warp * 16, j0, lse_log2 + warp * 16,
                                             dots + warp * 16, p_w, gs_w, scale_log2);
    __syncwarp();
    warp_matmul_accumulate<DH / 16>(gs_w, L::kLdProb, k_tile, L::kLdHead, dq);  // gQ += gS K
  }
  __syncthreads();
  store_warp_rows<DH>(dq, static_cast<float>(p.scale), scores, i0, p.q_len, gq + p.q_row(b, 0, h), q_stride);
#endif
}

}  // namespace kernels

namespace {

// Shared memory of the tensor-core kernels, in bytes.
template <int DH>
constexpr size_t forward_tc_bytes() {
  using L = kernels::TcLayout<DH>;
  return 3 * L::kHeadTile * sizeof(kernels::bf16) + L::kScoreTile * sizeof(float) +
         L::kProbTile * sizeof(kernels::bf16) + L::kAccTile * sizeof(float);
}
template <int DH>
constexpr size_t backward_tc_bytes() {
  using L = kernels::TcLayout<DH>;
  return 4 * L::kHeadTile * sizeof(kernels::bf16) + 2 * L::kScoreTile * sizeof(float) +
         2 * L::kProbTile * sizeof(kernels::bf16) + 2 * kernels::kTile * sizeof(float);
}
static_assert(2 * kernels::TcLayout<128>::kScoreTile >= kernels::TcLayout<128>::kAccTile,
              "the backward kernels stage their results in the two score tiles");

template <class T, int DH>
constexpr size_t dkdv_simt_bytes() {
  return (2 * kernels::kSimtRows * (DH + 1) + 2 * 16 * DH + 2 * 16) * sizeof(T);
}

// Raises a kernel's dynamic shared-memory limit past the default 48 KiB, once per kernel.
template <class Kernel>
void allow_shared_memory(Kernel kernel, size_t bytes) {
  T6_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

kernels::FlashShape flash_shape(const Backend::FlashAttention& a) {
  for (int64_t value : {a.batch, a.q_len, a.kv_len, a.heads, a.kv_heads, a.head_dim})
    T6_CHECK(value > 0 && value <= INT_MAX / 2, "cuda flash_attention: size ", value, " is out of range");
  T6_CHECK(a.head_dim <= Backend::FlashAttention::kMaxGpuHeadDim, "cuda flash_attention: head_dim ", a.head_dim,
           " is above ", Backend::FlashAttention::kMaxGpuHeadDim, "; use the composite causal attention");
  T6_CHECK(a.batch * a.heads <= INT_MAX && a.q_len <= 65535 * int64_t(kernels::kSimtRows), "cuda flash_attention: ",
           a.batch, "×", a.heads, " heads of ", a.q_len, " queries exceed the launch grid");
  kernels::FlashShape p;
  p.batch = int(a.batch), p.q_len = int(a.q_len), p.kv_len = int(a.kv_len), p.heads = int(a.heads);
  p.kv_heads = int(a.kv_heads), p.head_dim = int(a.head_dim), p.group = int(a.heads / a.kv_heads);
  p.offset = int(a.kv_len - a.q_len), p.scale = a.scale;
  return p;
}

unsigned tiles(int64_t n, int per_tile) { return static_cast<unsigned>((n + per_tile - 1) / per_tile); }

// Calls fn(std::integral_constant<int, DH>) with DH the smallest of 32, 64, 128 that holds head_dim.
template <class Fn>
void dispatch_head_dim(int64_t head_dim, Fn&& fn) {
  if (head_dim <= 32) return fn(std::integral_constant<int, 32>{});
  if (head_dim <= 64) return fn(std::integral_constant<int, 64>{});
  return fn(std::integral_constant<int, 128>{});
}

// bf16 WMMA needs compute capability 8.0 (Ampere) or later.
bool device_has_bf16_tensor_cores() {
  static const bool has = [] {
    int major = 0;
    T6_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
    return major >= 8;
  }();
  return has;
}

bool use_tensor_cores(const Backend::FlashAttention& a, DType dtype) {
  return a.bf16_inputs && dtype == DType::F32 && (a.head_dim == 32 || a.head_dim == 64 || a.head_dim == 128) &&
         device_has_bf16_tensor_cores();
}

}  // namespace

void CudaBackend::flash_attention_forward(const FlashAttention& a, const Tensor& q, const Tensor& k, const Tensor& v,
                                          Tensor& out, Tensor& lse) {
  const auto timing = timer_.time(a.bf16_inputs ? "flash_attention_forward bf16" : "flash_attention_forward");
  const kernels::FlashShape p = flash_shape(a);
  const dim3 grid(static_cast<unsigned>(a.batch * a.heads), tiles(a.q_len, kernels::kTile));
  if (use_tensor_cores(a, q.dtype())) {
    dispatch_head_dim(a.head_dim, [&](auto dh) {
      constexpr int DH = decltype(dh)::value;
      constexpr size_t bytes = forward_tc_bytes<DH>();
      static const bool raised = (allow_shared_memory(kernels::flash_attention_forward_tc<DH>, bytes), true);
      (void)raised;
      kernels::flash_attention_forward_tc<DH><<<grid, kernels::kTcThreads, bytes, stream_>>>(
          p, device_ptr<const float>(q), device_ptr<const float>(k), device_ptr<const float>(v),
          device_ptr<float>(out), device_ptr<float>(lse));
    });
    T6_CUDA_CHECK_LAUNCH(flash_attention_forward_tc);
    return;
  }
  dispatch_float("flash_attention_forward", q.dtype(), [&](auto t) {
    using T = decltype(t);
    dispatch_head_dim(a.head_dim, [&](auto dh) {
      constexpr int DH = decltype(dh)::value;
      kernels::flash_attention_forward_simt<T, DH><<<grid, kernels::kSimtRows, 0, stream_>>>(
          p, device_ptr<const T>(q), device_ptr<const T>(k), device_ptr<const T>(v), device_ptr<T>(out),
          device_ptr<T>(lse));
    });
  });
  T6_CUDA_CHECK_LAUNCH(flash_attention_forward_simt);
}

void CudaBackend::flash_attention_backward(const FlashAttention& a, const Tensor& q, const Tensor& k, const Tensor& v,
                                           const Tensor& out, const Tensor& lse, const Tensor& gout, Tensor& gq,
                                           Tensor& gk, Tensor& gv) {
  const auto timing = timer_.time(a.bf16_inputs ? "flash_attention_backward bf16" : "flash_attention_backward");
  const kernels::FlashShape p = flash_shape(a);
  Tensor row_dot = empty(lse.shape(), lse.dtype(), Device::CUDA);  // D_i = gout_i · out_i
  const dim3 query_grid(static_cast<unsigned>(a.batch * a.heads), tiles(a.q_len, kernels::kTile));
  dispatch_float("flash_attention_backward", q.dtype(), [&](auto t) {
    using T = decltype(t);
    kernels::flash_attention_backward_rowdot<T><<<grid_for(a.batch * a.q_len * a.heads * 32), kThreads, 0, stream_>>>(
        p, device_ptr<const T>(out), device_ptr<const T>(gout), device_ptr<T>(row_dot));
  });
  T6_CUDA_CHECK_LAUNCH(flash_attention_backward_rowdot);
  if (use_tensor_cores(a, q.dtype())) {
    const dim3 key_grid(static_cast<unsigned>(a.batch * a.kv_heads), tiles(a.kv_len, kernels::kTile));
    dispatch_head_dim(a.head_dim, [&](auto dh) {
      constexpr int DH = decltype(dh)::value;
      constexpr size_t bytes = backward_tc_bytes<DH>();
      static const bool raised = (allow_shared_memory(kernels::flash_attention_backward_dkdv_tc<DH>, bytes),
                                  allow_shared_memory(kernels::flash_attention_backward_dq_tc<DH>, bytes), true);
      (void)raised;
      kernels::flash_attention_backward_dkdv_tc<DH><<<key_grid, kernels::kTcThreads, bytes, stream_>>>(
          p, device_ptr<const float>(q), device_ptr<const float>(k), device_ptr<const float>(v),
          device_ptr<const float>(lse), device_ptr<const float>(row_dot), device_ptr<const float>(gout),
          device_ptr<float>(gk), device_ptr<float>(gv));
      T6_CUDA_CHECK_LAUNCH(flash_attention_backward_dkdv_tc);
      kernels::flash_attention_backward_dq_tc<DH><<<query_grid, kernels::kTcThreads, bytes, stream_>>>(
          p, device_ptr<const float>(q), device_ptr<const float>(k), device_ptr<const float>(v),
          device_ptr<const float>(lse), device_ptr<const float>(row_dot), device_ptr<const float>(gout),
          device_ptr<float>(gq));
      T6_CUDA_CHECK_LAUNCH(flash_attention_backward_dq_tc);
    });
    return;
  }
  const dim3 key_grid(static_cast<unsigned>(a.batch * a.kv_heads), tiles(a.kv_len, kernels::kSimtRows));
  dispatch_float("flash_attention_backward", q.dtype(), [&](auto t) {
    using T = decltype(t);
    dispatch_head_dim(a.head_dim, [&](auto dh) {
      constexpr int DH = decltype(dh)::value;
      constexpr size_t bytes = dkdv_simt_bytes<T, DH>();
      static const bool raised = (allow_shared_memory(kernels::flash_attention_backward_dkdv_simt<T, DH>, bytes), true);
      (void)raised;
      kernels::flash_attention_backward_dkdv_simt<T, DH><<<key_grid, kernels::kSimtRows, bytes, stream_>>>(
          p, device_ptr<const T>(q), device_ptr<const T>(k), device_ptr<const T>(v), device_ptr<const T>(lse),
          device_ptr<const T>(row_dot), device_ptr<const T>(gout), device_ptr<T>(gk), device_ptr<T>(gv));
      T6_CUDA_CHECK_LAUNCH(flash_attention_backward_dkdv_simt);
      kernels::flash_attention_backward_dq_simt<T, DH><<<query_grid, kernels::kSimtRows, 0, stream_>>>(
          p, device_ptr<const T>(q), device_ptr<const T>(k), device_ptr<const T>(v), device_ptr<const T>(lse),
          device_ptr<const T>(row_dot), device_ptr<const T>(gout), device_ptr<T>(gq));
      T6_CUDA_CHECK_LAUNCH(flash_attention_backward_dq_simt);
    });
  });
}

}  // namespace t6
