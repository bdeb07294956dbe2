// The tensor-core kernels of fused causal attention (bf16 operands, float32 accumulation; the scheme is
// described in cuda/kernels_flash_attention.cu) and their launches, shared by plain flash attention and
// TPA's fused attention (cuda/kernels_tpa_flash_attention.cu). The kernels take every q, k and v tile
// from a `Tiles` source, today HeadTiles (bfloat16 heads in device memory); a source that forms tiles
// from TPA's factors was measured through this interface (docs/PERF.md). Its interface:
//   load_q<DH, kRows, kThreads[, kAsync]>(p, b, h, i0, rows, tile)   query rows i0 … i0+rows−1 of head h
//     (with kAsync the copies may be left in flight as cp.async, see load_head_tile)
//   load_k, load_v<DH, kRows, kThreads>(p, b, hk, j0, rows, tile)   key/value rows j0 … of head hk
// each filling a bf16 [kRows][DH + 8] shared tile (rows past `rows` zero) with the block's kThreads
// threads. The output gradient is always a bfloat16 (B,Tq,H,dh) tensor.
#pragma once
#include <cuda_bf16.h>

#include <climits>
#include <cmath>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/kernel_utils.cuh"
#include "cuda/mma_bf16.cuh"

namespace t6 {

namespace kernels {

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

// D_i = gout_i · out_i for every query row (the softmax backward's row term), summed in T. One warp per row.
template <class T, class O, class G>
__global__ void flash_attention_backward_rowdot(FlashShape p, const O* out, const G* gout, T* row_dot) {
  const int64_t rows = int64_t(p.batch) * p.q_len * p.heads;
  const int lane = threadIdx.x % 32;
  for (int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; row < rows;
       row += int64_t(gridDim.x) * blockDim.x / 32) {
    T dot = 0;
    for (int d = lane; d < p.head_dim; d += 32)
      dot += static_cast<T>(out[row * p.head_dim + d]) * static_cast<T>(gout[row * p.head_dim + d]);
    dot = warp_reduce(dot, Sum{});
    // row = (b·Tq + i)·H + h, and D is stored like lse, as (b, h, i)
    const int h = row % p.heads, i = (row / p.heads) % p.q_len, b = row / (int64_t(p.heads) * p.q_len);
    if (lane == 0) row_dot[p.lse_index(b, h, i)] = dot;
  }
}


// --- tensor-core kernels (bf16 inputs, fp32 accumulation) -----------------------------------------
//
// Every product is one warp-wide mma.sync m16n8k16 (fragment layouts in cuda/mma_bf16.cuh).
//
// So a warp's 16×64 score block S lives in registers as s[n][0..3] for the eight 8-key blocks n: lane
// holds rows g and g+8 at keys 8n + 2t + {0, 1}. A row is spread over the 4 lanes of a quad (same g),
// so row reductions are two shuffles (xor 1, xor 2). The same numbers, rounded to bf16, are already
// the A fragment of the next product P·V: A block kk (keys 16kk…16kk+15) is
//   a0 = s[2kk][0,1], a1 = s[2kk][2,3], a2 = s[2kk+1][0,1], a3 = s[2kk+1][2,3].
//
// Shared tiles are bf16 [64 rows][DH + 8]; fragments come out of them with ldmatrix (cuda/mma_bf16.cuh).
// The +8 padding makes a row an odd multiple of 16 bytes (80, 144, 272), so the 8 row addresses of one
// matrix fall in 8 different 16-byte bank groups (no conflicts), and keeps every row start 16-byte
// aligned as ldmatrix requires.
//
// A warp owns 16 rows (queries, or keys in backward): forward runs 8 warps on 128 query rows, backward
// kKeys / 16 warps on kKeys keys (BackwardTc), each walking tiles of 64 rows of the other operand. The
// accumulators (O, or gk and gv) stay in registers for the whole walk.

constexpr int kTile = 64;  // rows of a tile: queries and keys
// The forward kernel's time goes mostly to loading k/v tiles, rows re-read from L2 by every block, so
// a block takes 128 query rows (8 warps; for head_dim ≤ 64 at most 128 registers each, so that two
// blocks share a multiprocessor) and every tile it loads serves twice as many rows. docs/PERF.md has
// the timings of both choices, and of the backward's.
constexpr int kForwardRows = 128;
constexpr int kForwardThreads = 256;
template <int DH>
struct TcTile {
  static constexpr int kLd = DH + 8;  // bf16 elements per shared tile row (see the bank note above)
  static constexpr int kElems = kTile * kLd;
};

// acc (16 × 64, C layout: acc[n] is columns 8n…8n+7) += A (16 rows row0… of tile `a`, DH wide) ·
// Bᵀ where the 64 rows of tile `b` are B's columns: the warp's 16×64 block of S = Q Kᵀ (or gP = gout
// Vᵀ, or Sᵀ = K Qᵀ …).
template <int DH>
__device__ __forceinline__ void warp_scores(float (&acc)[8][4], const bf16* a, int row0, const bf16* b) {
  constexpr int ld = TcTile<DH>::kLd;
#pragma unroll
  for (int n = 0; n < 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < DH / 16; ++kk) {
    uint32_t fa[4];
    load_a(fa, a, ld, row0, kk * 16);
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t fb[4];
      load_b_transposed_tile(fb, b, ld, np * 16, kk * 16);
      mma_bf16(acc[2 * np], fa, fb[0], fb[1]);
      mma_bf16(acc[2 * np + 1], fa, fb[2], fb[3]);
    }
  }
}

// acc (16 × DH, C layout) += A (16 × 64 from registers, A fragments per 16 columns) · B (64 × DH, the
// rows of tile `b`): O += P V, gV += Pᵀ gout, gK += gSᵀ Q, gQ += gS K.
template <int DH>
__device__ __forceinline__ void warp_accumulate(float (&acc)[DH / 8][4], const uint32_t (&a)[4][4], const bf16* b) {
  constexpr int ld = TcTile<DH>::kLd;
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
#pragma unroll
    for (int dp = 0; dp < DH / 16; ++dp) {
      uint32_t fb[4];
      load_b_tile(fb, b, ld, kk * 16, dp * 16);
      mma_bf16(acc[2 * dp], a[kk], fb[0], fb[1]);
      mma_bf16(acc[2 * dp + 1], a[kk], fb[2], fb[3]);
    }
  }
}

// C-layout pairs → A fragments (section comment): columns 16kk…16kk+15 of a 16×64 block.
__device__ __forceinline__ void to_a_fragments(const float (&c)[8][4], uint32_t (&a)[4][4]) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    a[kk][0] = pack_bf16(c[2 * kk][0], c[2 * kk][1]);          // row g,   cols 2t, 2t+1
    a[kk][1] = pack_bf16(c[2 * kk][2], c[2 * kk][3]);          // row g+8, cols 2t, 2t+1
    a[kk][2] = pack_bf16(c[2 * kk + 1][0], c[2 * kk + 1][1]);  // row g,   cols 2t+8, 2t+9
    a[kk][3] = pack_bf16(c[2 * kk + 1][2], c[2 * kk + 1][3]);  // row g+8, cols 2t+8, 2t+9
  }
}

// The inverse of to_a_fragments for one number: c[n][e] as it was rounded to bf16 (a bf16 is the top
// half of a float32; e & 1 picks the register half, low = even column).
__device__ __forceinline__ float bf16_of_fragment(const uint32_t (&a)[4][4], int n, int e) {
  const uint32_t pair = a[n >> 1][(n & 1) * 2 + (e >> 1)];
  return __uint_as_float((e & 1) ? (pair & 0xffff0000u) : (pair << 16));
}

// Loads `rows` rows of DH bfloat16 values (row r at src + r·stride; the mixed-precision copies of q, k,
// v and gout) into a bf16 [kRows][DH + 8] tile, zero rows past `rows`, with the kThreads threads of the
// block: 16 bytes (8 values) a step when the addresses allow, all of a thread's loads issued before its
// stores, so they overlap. With kAsync those 16-byte steps are cp.async copies left in flight: the
// caller commits them and waits (cp_async_wait) before its barrier, so a tile can load while the block
// works on another.
template <int DH, int kRows, int kThreads, bool kAsync = false>
__device__ void load_head_tile(const bf16* src, int64_t stride, int rows, bf16* dst) {
  constexpr int ld = TcTile<DH>::kLd, kPerThread = kRows * DH / 8 / kThreads;
  const bool vectors = ((reinterpret_cast<uintptr_t>(src) | (stride * sizeof(bf16))) % 16) == 0;
  if (kAsync && vectors) {
#pragma unroll
    for (int u = 0; u < kPerThread; ++u) {
      const int idx = u * kThreads + threadIdx.x, r = idx / (DH / 8), c = idx % (DH / 8) * 8;
      cp_async_16(dst + r * ld + c, r < rows ? src + r * stride + c : src, r < rows);  // rows past `rows`: zeros
    }
    return;
  }
  uint4 x[kPerThread];
#pragma unroll
  for (int u = 0; u < kPerThread; ++u) {
    const int idx = u * kThreads + threadIdx.x, r = idx / (DH / 8), c = idx % (DH / 8) * 8;
    x[u] = make_uint4(0u, 0u, 0u, 0u);
    if (r < rows) {
      const bf16* at = src + r * stride + c;
      if (vectors) {
        x[u] = *reinterpret_cast<const uint4*>(at);
      } else {
        uint16_t bits[8];
        for (int e = 0; e < 8; ++e) bits[e] = __bfloat16_as_ushort(at[e]);
        x[u] = make_uint4(bits[0] | uint32_t(bits[1]) << 16, bits[2] | uint32_t(bits[3]) << 16,
                          bits[4] | uint32_t(bits[5]) << 16, bits[6] | uint32_t(bits[7]) << 16);
      }
    }
  }
#pragma unroll
  for (int u = 0; u < kPerThread; ++u) {
    const int idx = u * kThreads + threadIdx.x, r = idx / (DH / 8), c = idx % (DH / 8) * 8;
    *reinterpret_cast<uint4*>(dst + r * ld + c) = x[u];  // the row length (DH + 8)·2 bytes is a multiple of 16
  }
}

// The tile source of plain flash attention: bfloat16 copies of q (B,Tq,H,dh) and k, v (B,Tk,Hkv,dh),
// head_dim = DH.
struct HeadTiles {
  const bf16 *q, *k, *v;
  template <int DH, int kRows, int kThreads, bool kAsync = false>
  __device__ void load_q(const FlashShape& p, int b, int h, int i0, int rows, bf16* tile) const {
    load_head_tile<DH, kRows, kThreads, kAsync>(q + p.q_row(b, i0, h), int64_t(p.heads) * DH, rows, tile);
  }
  template <int DH, int kRows, int kThreads>
  __device__ void load_k(const FlashShape& p, int b, int hk, int j0, int rows, bf16* tile) const {
    load_head_tile<DH, kRows, kThreads>(k + p.kv_row(b, j0, hk), int64_t(p.kv_heads) * DH, rows, tile);
  }
  template <int DH, int kRows, int kThreads>
  __device__ void load_v(const FlashShape& p, int b, int hk, int j0, int rows, bf16* tile) const {
    load_head_tile<DH, kRows, kThreads>(v + p.kv_row(b, j0, hk), int64_t(p.kv_heads) * DH, rows, tile);
  }
};

// Writes a warp's 16 rows of C-layout accumulators (times `factor`) to a float32 tensor: lane holds
// rows row_a = g and row_a + 8 (as tensor rows), columns 8n + 2t, 2t+1 (a float2 each). Row r starts
// at dst + r·stride; rows ≥ rows_valid are dropped.
template <int DH>
__device__ void store_rows(const float (&acc)[DH / 8][4], float factor_a, float factor_b, int row_a,
                           int rows_valid, float* dst, int64_t stride) {
  const int t = threadIdx.x % 4;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int row = row_a + 8 * half;
    if (row >= rows_valid) continue;
    const float factor = half ? factor_b : factor_a;
    float* at = dst + row * stride + 2 * t;
#pragma unroll
    for (int n = 0; n < DH / 8; ++n)
      *reinterpret_cast<float2*>(at + 8 * n) = make_float2(acc[n][2 * half] * factor, acc[n][2 * half + 1] * factor);
  }
}

// flash_attention_forward on tensor cores. Grid (B·H, query tiles, the last tile first); shared
// memory: the q, k and v tiles (bf16; the q tile is written before the first barrier of the key walk
// and read as A fragments on every tile). Per lane the running max and sum of rows g and g+8 and
// their O accumulators (C layout) stay in registers.
template <int DH, class Tiles>
__global__ void __launch_bounds__(kForwardThreads, DH <= 64 ? 2 : 1)
    flash_attention_forward_tc(FlashShape p, Tiles src, float* out, float* lse) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // never launched: below compute capability 8.0 the host picks the plain kernels
#else
  extern __shared__ __align__(128) unsigned char tc_shared[];
  bf16* q_tile = reinterpret_cast<bf16*>(tc_shared);
  bf16* k_tile = q_tile + kForwardRows * TcTile<DH>::kLd;
  bf16* v_tile = k_tile + TcTile<DH>::kElems;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const int b = blockIdx.x / p.heads, h = blockIdx.x % p.heads, hk = h / p.group;
  const int i0 = (gridDim.y - 1 - blockIdx.y) * kForwardRows;
  const int64_t q_stride = int64_t(p.heads) * DH;
  const float scale_log2 = static_cast<float>(p.scale) * kLog2e;  // softmax in base 2: exp(x) = 2^(x·log2 e)
  const int row_a = i0 + warp * 16 + g;                           // this lane's query rows: row_a, row_a + 8

  src.template load_q<DH, kForwardRows, kForwardThreads>(p, b, h, i0, min(kForwardRows, p.q_len - i0), q_tile);
  float o[DH / 8][4];  // O_w, C layout: o[n] holds head columns 8n + 2t, 2t+1 of rows g, g+8
#pragma unroll
  for (int n = 0; n < DH / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  // Rows g and g+8 ([0], [1]), in base 2. The max is the same on the quad's 4 lanes; the sum is this
  // lane's part (its 16 columns per tile), added across the quad at the end.
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};

  const int last_key = min(p.kv_len - 1, i0 + kForwardRows - 1 + p.offset);  // the block's last visible key
  for (int j0 = 0; j0 <= last_key; j0 += kTile) {
    __syncthreads();  // every warp is done with the previous k and v tiles
    src.template load_k<DH, kTile, kForwardThreads>(p, b, hk, j0, min(kTile, p.kv_len - j0), k_tile);
    src.template load_v<DH, kTile, kForwardThreads>(p, b, hk, j0, min(kTile, p.kv_len - j0), v_tile);
    __syncthreads();
    float s[8][4];  // S_w = Q_w Kᵀ: s[n] = keys j0 + 8n + 2t, +1 of rows g (0, 1) and g+8 (2, 3)
    warp_scores<DH>(s, q_tile, warp * 16, k_tile);
    // Mask only where some key of the tile is hidden from some row of the block (the diagonal tiles,
    // the ragged end); elsewhere every key is visible.
    const bool edge = j0 + kTile - 1 > i0 + p.offset || j0 + kTile > p.kv_len;
    float tile_max[2] = {row_max[0], row_max[1]};
#pragma unroll
    for (int n = 0; n < 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = j0 + 8 * n + 2 * t + (e & 1), row = row_a + (e >> 1) * 8;
        float x = s[n][e] * scale_log2;
        if (edge && (key > row + p.offset || key >= p.kv_len)) x = -INFINITY;
        s[n][e] = x;
        tile_max[e >> 1] = fmaxf(tile_max[e >> 1], x);
      }
    }
    float ref[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      // the row's 64 keys sit on the quad's 4 lanes (lane ^ 1, lane ^ 2 share g)
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
      ref[r] = tile_max[r] == -INFINITY ? 0.f : tile_max[r];  // a row with no visible key yet stays 0
      const float rescale = exp2f(row_max[r] - ref[r]);       // a raised max rescales what came before
      row_max[r] = tile_max[r];
      row_sum[r] *= rescale;
#pragma unroll
      for (int n = 0; n < DH / 8; ++n) o[n][2 * r] *= rescale, o[n][2 * r + 1] *= rescale;
    }
#pragma unroll
    for (int n = 0; n < 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = exp2f(s[n][e] - ref[e >> 1]);  // P, unnormalised
        row_sum[e >> 1] += s[n][e];
      }
    }
    uint32_t pa[4][4];  // P_w as A fragments (bf16) for O_w += P_w V
    to_a_fragments(s, pa);
    warp_accumulate<DH>(o, pa, v_tile);
  }
  // out = O / l, lse = ln(2) · (m + log2 l)
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 1);
    row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 2);
  }
  store_rows<DH>(o, 1.f / row_sum[0], 1.f / row_sum[1], row_a, p.q_len, out + p.q_row(b, 0, h), q_stride);
  if (t == 0) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int i = row_a + 8 * r;
      if (i < p.q_len) lse[p.lse_index(b, h, i)] = (row_max[r] + log2f(row_sum[r])) * kLn2;
    }
  }
#endif
}

// The backward in one pass (FlashAttention-2's): one block per kKeys = 128 keys of one key/value head,
// a warp per 16 keys, walks every 64-query tile of the group's heads that sees them. Per tile each warp
// forms, for its keys (rows g, g+8 of the C layout are keys, the 64 columns queries),
//   Sᵀ = K Qᵀ and gPᵀ = V goutᵀ  →  Pᵀ, gSᵀ  →  gV += Pᵀ gout, gK += gSᵀ Q   (in registers),
// and leaves gSᵀ (bf16) in shared memory. The tile's gQ = scale · gS K needs every warp's gSᵀ, so it
// is added while the block works on the next tile (gSᵀ is double-buffered: one barrier per tile), with
// float32 atomics into gq (zeroed by the launch). Scores and probabilities are so formed once, not
// again by a second kernel over the queries. The next tile's q and gout copy in (cp.async) while the
// block works on this one. 128 keys a block measured faster than 64 (half the tile loads and gq
// additions per key), although at 244 registers a thread (head_dim 64) the block fits only once per
// multiprocessor; Hopper's bulk reductions from a staging area in place of the atomics measured slower
// (docs/PERF.md).
template <int DH>
struct BackwardTc {
  static constexpr int kKeys = 128;
  static constexpr int kThreads = 2 * kKeys;  // a warp per 16 keys
  static constexpr int kLd = TcTile<DH>::kLd;
  static constexpr int kGsLd = kTile + 8;  // gSᵀ [kKeys][kTile + 8]: the bank note above
  // Adding gQ, warp w takes queries 16·(w % 4) … +15 and head dims kCols·(w / 4) … +kCols−1.
  static constexpr int kCols = DH / 2;
  static constexpr int kGsElems = kKeys * kGsLd;
  static constexpr size_t kBytes =
      (2 * kKeys * kLd + 4 * kTile * kLd + 2 * kGsElems) * sizeof(bf16) + 4 * kTile * sizeof(float);
};

// Adds the tile's gQ for rows i0 + q0 … +15 of head h (q0 warp-uniform), head dims col0 … col0 + kCols − 1:
// scale · gS K over the key blocks some of these rows see (the others add only zeros).
template <int DH>
__device__ __forceinline__ void add_query_gradients(const FlashShape& p, const bf16* gs_tile, const bf16* k_tile,
                                                    int b, int h, int i0, int q0, int j0, int col0, float* gq) {
  using Layout = BackwardTc<DH>;
  constexpr int kCols = Layout::kCols;
  const int g = (threadIdx.x % 32) >> 2, t = threadIdx.x & 3;
  const int last_row = min(i0 + q0 + 15, p.q_len - 1), last_key = last_row + p.offset;
  if (i0 + q0 >= p.q_len || last_key < j0) return;
  const int blocks = min(Layout::kKeys / 16, (last_key - j0) / 16 + 1);
  float acc[kCols / 8][4];  // C layout: rows g, g+8; columns col0 + 8n + 2t, +1
#pragma unroll
  for (int n = 0; n < kCols / 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < Layout::kKeys / 16; ++kk) {
    if (kk >= blocks) break;
    uint32_t fa[4];
    load_a_transposed(fa, gs_tile, Layout::kGsLd, q0, kk * 16);
#pragma unroll
    for (int dp = 0; dp < kCols / 16; ++dp) {
      uint32_t fb[4];
      load_b_tile(fb, k_tile, Layout::kLd, kk * 16, col0 + dp * 16);
      mma_bf16(acc[2 * dp], fa, fb[0], fb[1]);
      mma_bf16(acc[2 * dp + 1], fa, fb[2], fb[3]);
    }
  }
  const float scale = static_cast<float>(p.scale);  // ∂s/∂q = scale · k
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = i0 + q0 + g + 8 * r;
    if (row >= p.q_len) continue;
#pragma unroll
    for (int n = 0; n < kCols / 8; ++n) {
      float* at = gq + p.q_row(b, row, h) + col0 + 8 * n + 2 * t;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      atomicAdd(reinterpret_cast<float2*>(at), make_float2(acc[n][2 * r] * scale, acc[n][2 * r + 1] * scale));
#else
      atomicAdd(at, acc[n][2 * r] * scale);
      atomicAdd(at + 1, acc[n][2 * r + 1] * scale);
#endif
    }
  }
}

// A warp's 16 rows of gSᵀ (A fragments, to_a_fragments' layout) into the shared [kKeys][kTile + 8] tile.
template <int kGsLd>
__device__ __forceinline__ void store_fragments(const uint32_t (&fa)[4][4], int row0, bf16* tile) {
  const int g = (threadIdx.x % 32) >> 2, t = threadIdx.x & 3;
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
#pragma unroll
    for (int m = 0; m < 4; ++m)  // a_m: row g (+8 for odd m), columns 16kk + 2t (+8 for m ≥ 2)
      *reinterpret_cast<uint32_t*>(tile + (row0 + g + 8 * (m & 1)) * kGsLd + 16 * kk + 8 * (m >> 1) + 2 * t) = fa[kk][m];
  }
}

// One warp's work on one tile: gV += Pᵀ gout and gK += gSᵀ Q for its 16 keys, gSᵀ into `gs_tile`.
template <int DH>
__device__ __forceinline__ void key_gradients_of_tile(const FlashShape& p, const bf16* k_tile, const bf16* v_tile,
                                                      const bf16* q_tile, const bf16* g_tile, const float* lse_log2,
                                                      const float* dots, int i0, int j0, float (&dk)[DH / 8][4],
                                                      float (&dv)[DH / 8][4], bf16* gs_tile) {
  const int warp = threadIdx.x / 32, t = threadIdx.x & 3, key_a = j0 + warp * 16 + ((threadIdx.x % 32) >> 2);
  const float scale_log2 = static_cast<float>(p.scale) * kLog2e;
  // A warp whose keys all come after the tile's last query adds nothing: its gSᵀ rows are zero.
  const bool hidden = j0 + warp * 16 > min(i0 + kTile, p.q_len) - 1 + p.offset;
  uint32_t fa[4][4] = {};  // Pᵀ_w, then gSᵀ_w, as A fragments (bf16)
  if (!hidden) {
    const bool edge = j0 + warp * 16 + 15 > i0 + p.offset || i0 + kTile > p.q_len;
    float s[8][4];  // Sᵀ_w = K_w Qᵀ, then Pᵀ in place: s[n] = queries i0 + 8n + 2t, +1 of keys g, g+8
    warp_scores<DH>(s, k_tile, warp * 16, q_tile);
#pragma unroll
    for (int n = 0; n < 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int c = 8 * n + 2 * t + (e & 1), query = i0 + c, key = key_a + (e >> 1) * 8;
        float prob = exp2f(s[n][e] * scale_log2 - lse_log2[c]);  // P_ij = exp(scale·s − lse_i)
        if (edge && (key > query + p.offset || query >= p.q_len)) prob = 0.f;
        s[n][e] = prob;
      }
    }
    to_a_fragments(s, fa);
    warp_accumulate<DH>(dv, fa, g_tile);  // gV += Pᵀ gout
    float gp[8][4];                       // gPᵀ_w = V_w goutᵀ, then gSᵀ = Pᵀ (gPᵀ − D) in place
    warp_scores<DH>(gp, v_tile, warp * 16, g_tile);
#pragma unroll
    for (int n = 0; n < 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        // At DH = 128 the fp32 Pᵀ would not fit beside gK, gV and gPᵀ in 255 registers: read it back
        // from its bf16 A fragments instead (one more bf16 rounding of P, well inside the test's 2e-2).
        const float prob = DH > 64 ? bf16_of_fragment(fa, n, e) : s[n][e];
        gp[n][e] = prob * (gp[n][e] - dots[8 * n + 2 * t + (e & 1)]);
      }
    }
    to_a_fragments(gp, fa);
    warp_accumulate<DH>(dk, fa, q_tile);  // gK += gSᵀ Q
  }
  store_fragments<BackwardTc<DH>::kGsLd>(fa, warp * 16, gs_tile);
}

template <int DH, class Tiles>
__global__ void __launch_bounds__(BackwardTc<DH>::kThreads)
    flash_attention_backward_tc(FlashShape p, Tiles src, const float* lse, const float* row_dot, const bf16* gout,
                                float* gq, float* gk, float* gv) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // never launched: below compute capability 8.0 the host picks the plain kernels
#else
  using Layout = BackwardTc<DH>;
  constexpr int kKeys = Layout::kKeys, kThreads = Layout::kThreads, kElems = TcTile<DH>::kElems;
  extern __shared__ __align__(128) unsigned char tc_shared[];
  bf16* k_tile = reinterpret_cast<bf16*>(tc_shared);
  bf16* v_tile = k_tile + kKeys * Layout::kLd;
  bf16* q_tiles = v_tile + kKeys * Layout::kLd;  // two buffers: the tile worked on, the next one loading
  bf16* g_tiles = q_tiles + 2 * kElems;
  bf16* gs_tiles = g_tiles + 2 * kElems;  // two buffers: this tile's gSᵀ, the previous tile's
  float* extras = reinterpret_cast<float*>(gs_tiles + 2 * Layout::kGsElems);  // per buffer: lse·log2 e, then D
  const int warp = threadIdx.x / 32;
  const int b = blockIdx.x / p.kv_heads, hk = blockIdx.x % p.kv_heads;
  const int j0 = blockIdx.y * kKeys;
  const int64_t q_stride = int64_t(p.heads) * DH, kv_stride = int64_t(p.kv_heads) * DH;
  const int first_query = max(0, j0 - p.offset) / kTile * kTile;

  // Starts the copies of tile (h, i0) into buffer `buf`; returns this thread's share of its lse and D
  // (thread c < kTile: lse of query i0 + c in base 2; kTile ≤ c < 2·kTile: D of query i0 + c − kTile),
  // stored by the caller once the buffer is free. Queries past Tq are masked (P = 0) where used.
  const auto start_tile = [&](int h, int i0, int buf) {
    const int rows = min(kTile, p.q_len - i0);
    src.template load_q<DH, kTile, kThreads, true>(p, b, h, i0, rows, q_tiles + buf * kElems);
    load_head_tile<DH, kTile, kThreads, true>(gout + p.q_row(b, i0, h), q_stride, rows, g_tiles + buf * kElems);
    cp_async_commit();
    const int i = i0 + threadIdx.x % kTile;
    if (threadIdx.x >= 2 * kTile || i >= p.q_len) return 0.f;
    return threadIdx.x < kTile ? lse[p.lse_index(b, h, i)] * kLog2e : row_dot[p.lse_index(b, h, i)];
  };
  const auto store_extra = [&](float x, int buf) {
    if (threadIdx.x < 2 * kTile) extras[buf * 2 * kTile + threadIdx.x] = x;
  };
  // gQ of tile (h, i0), whose gSᵀ is in buffer `buf`
  const auto add_gq = [&](int h, int i0, int buf) {
    add_query_gradients<DH>(p, gs_tiles + buf * Layout::kGsElems, k_tile, b, h, i0, warp % 4 * 16, j0,
                            warp / 4 * Layout::kCols, gq);
  };

  src.template load_k<DH, kKeys, kThreads>(p, b, hk, j0, min(kKeys, p.kv_len - j0), k_tile);
  src.template load_v<DH, kKeys, kThreads>(p, b, hk, j0, min(kKeys, p.kv_len - j0), v_tile);
  float dk[DH / 8][4], dv[DH / 8][4];  // C layout: rows = keys g, g+8; columns = head dims 8n + 2t, +1
#pragma unroll
  for (int n = 0; n < DH / 8; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[n][e] = dv[n][e] = 0.f;
  }
  int h = hk * p.group, i0 = first_query, buf = 0, last_h = -1, last_i0 = 0;  // last_h ≥ 0: a gQ to add
  store_extra(start_tile(h, i0, 0), 0);
  for (;;) {
    cp_async_wait<0>();
    __syncthreads();  // tile `buf` is in (the first time: k, v too), the last tile's gSᵀ is whole, and
                      // every warp is done with buffer buf ^ 1 of q, gout, lse, D and with gSᵀ buffer buf
    int next_h = h, next_i0 = i0 + kTile;  // the next 64 queries, or the group's next head
    if (next_i0 >= p.q_len) next_h = h + 1, next_i0 = first_query;
    const bool more = next_h < (hk + 1) * p.group;
    const float next_extra = more ? start_tile(next_h, next_i0, buf ^ 1) : 0.f;
    if (last_h >= 0) add_gq(last_h, last_i0, buf ^ 1);
    const float* lse_log2 = extras + buf * 2 * kTile;
    key_gradients_of_tile<DH>(p, k_tile, v_tile, q_tiles + buf * kElems, g_tiles + buf * kElems, lse_log2,
                              lse_log2 + kTile, i0, j0, dk, dv, gs_tiles + buf * Layout::kGsElems);
    if (!more) break;
    store_extra(next_extra, buf ^ 1);
    last_h = h, last_i0 = i0, h = next_h, i0 = next_i0, buf ^= 1;
  }
  __syncthreads();  // the last tile's gSᵀ is whole
  add_gq(h, i0, buf);
  const int key_a = j0 + warp * 16 + (threadIdx.x % 32 >> 2);  // this lane's keys: key_a, key_a + 8
  // keys past Tk (zero rows of the k and v tiles) are dropped here
  store_rows<DH>(dk, static_cast<float>(p.scale), static_cast<float>(p.scale), key_a, p.kv_len,
                 gk + p.kv_row(b, 0, hk), kv_stride);  // ∂s/∂k = scale · q
  store_rows<DH>(dv, 1.f, 1.f, key_a, p.kv_len, gv + p.kv_row(b, 0, hk), kv_stride);
#endif
}


}  // namespace kernels

namespace flash_tc {

// Shared memory of the forward kernel, in bytes: bf16 head tiles (q, k, v). The backward kernel's is
// BackwardTc::kBytes.
template <int DH>
constexpr size_t forward_tc_bytes() {
  return (kernels::kForwardRows + 2 * kernels::kTile) * kernels::TcTile<DH>::kLd * sizeof(kernels::bf16);
}

// Raises a kernel's dynamic shared-memory limit past the default 48 KiB, once per kernel.
template <class Kernel>
inline void allow_shared_memory(Kernel kernel, size_t bytes) {
  T6_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

inline kernels::FlashShape flash_shape(const Backend::FlashAttention& a) {
  for (int64_t value : {a.batch, a.q_len, a.kv_len, a.heads, a.kv_heads, a.head_dim})
    T6_CHECK(value > 0 && value <= INT_MAX / 2, "cuda flash_attention: size ", value, " is out of range");
  T6_CHECK(a.head_dim <= CudaBackend::kMaxFusedHeadDim, "cuda flash_attention: head_dim ", a.head_dim,
           " is above ", CudaBackend::kMaxFusedHeadDim, "; use the composite causal attention");
  T6_CHECK(a.batch * a.heads <= INT_MAX && a.q_len <= 65535 * int64_t(kernels::kTile), "cuda flash_attention: ",
           a.batch, "×", a.heads, " heads of ", a.q_len, " queries exceed the launch grid");
  kernels::FlashShape p;
  p.batch = int(a.batch), p.q_len = int(a.q_len), p.kv_len = int(a.kv_len), p.heads = int(a.heads);
  p.kv_heads = int(a.kv_heads), p.head_dim = int(a.head_dim), p.group = int(a.heads / a.kv_heads);
  p.offset = int(a.kv_len - a.q_len), p.scale = a.scale;
  return p;
}

inline unsigned tiles(int64_t n, int per_tile) { return static_cast<unsigned>((n + per_tile - 1) / per_tile); }

// Calls fn(std::integral_constant<int, DH>) with DH the smallest of 32, 64, 128 that holds head_dim.
template <class Fn>
void dispatch_head_dim(int64_t head_dim, Fn&& fn) {
  if (head_dim <= 32) return fn(std::integral_constant<int, 32>{});
  if (head_dim <= 64) return fn(std::integral_constant<int, 64>{});
  return fn(std::integral_constant<int, 128>{});
}

// bf16 WMMA needs compute capability 8.0 (Ampere) or later.
inline bool device_has_bf16_tensor_cores() {
  static const bool has = device_attribute(cudaDevAttrComputeCapabilityMajor) >= 8;
  return has;
}


// flash_attention_forward on tensor cores: out (B,Tq,H,dh) and lse (B,H,Tq), float32.
template <class Tiles>
void launch_forward(const kernels::FlashShape& p, const Tiles& src, Tensor& out, Tensor& lse, cudaStream_t stream) {
  dispatch_head_dim(p.head_dim, [&](auto dh) {
    constexpr int DH = decltype(dh)::value;
    constexpr size_t bytes = forward_tc_bytes<DH>();
    static const bool raised = (allow_shared_memory(kernels::flash_attention_forward_tc<DH, Tiles>, bytes), true);
    (void)raised;
    const dim3 grid(static_cast<unsigned>(p.batch * p.heads), tiles(p.q_len, kernels::kForwardRows));
    kernels::flash_attention_forward_tc<DH, Tiles>
        <<<grid, kernels::kForwardThreads, bytes, stream>>>(p, src, device_ptr<float>(out), device_ptr<float>(lse));
  });
  T6_CUDA_CHECK_LAUNCH(flash_attention_forward_tc);
}

// flash_attention_backward on tensor cores: gout bfloat16, out float32 or bfloat16, lse and gq, gk, gv
// float32 (gq is zeroed here: the kernel adds into it).
template <class Tiles>
void launch_backward(const kernels::FlashShape& p, const Tiles& src, const Tensor& out, const Tensor& lse,
                     const Tensor& gout, Tensor& gq, Tensor& gk, Tensor& gv, cudaStream_t stream) {
  using kernels::bf16;
  T6_CHECK(reinterpret_cast<uintptr_t>(gq.raw_data()) % 8 == 0,
           "cuda flash_attention_backward: gq must start on an 8-byte boundary (a tensor of its own does), not a "
           "view into the middle of another");
  Tensor row_dot = empty(lse.shape(), DType::F32, Device::CUDA);  // D_i = gout_i · out_i
  const unsigned rowdot_grid = grid_for(int64_t(p.batch) * p.q_len * p.heads * 32);
  if (out.dtype() == DType::BF16)
    kernels::flash_attention_backward_rowdot<float, bf16, bf16><<<rowdot_grid, kThreads, 0, stream>>>(
        p, device_ptr<const bf16>(out), device_ptr<const bf16>(gout), device_ptr<float>(row_dot));
  else
    kernels::flash_attention_backward_rowdot<float, float, bf16><<<rowdot_grid, kThreads, 0, stream>>>(
        p, device_ptr<const float>(out), device_ptr<const bf16>(gout), device_ptr<float>(row_dot));
  T6_CUDA_CHECK_LAUNCH(flash_attention_backward_rowdot);
  T6_CUDA_CHECK(cudaMemsetAsync(device_ptr<float>(gq), 0, gq.numel() * sizeof(float), stream));
  dispatch_head_dim(p.head_dim, [&](auto dh) {
    constexpr int DH = decltype(dh)::value;
    using Layout = kernels::BackwardTc<DH>;
    const auto kernel = kernels::flash_attention_backward_tc<DH, Tiles>;
    static const bool raised = (allow_shared_memory(kernel, Layout::kBytes), true);
    (void)raised;
    const dim3 grid(static_cast<unsigned>(p.batch * p.kv_heads), tiles(p.kv_len, Layout::kKeys));
    kernel<<<grid, Layout::kThreads, Layout::kBytes, stream>>>(
        p, src, device_ptr<const float>(lse), device_ptr<const float>(row_dot), device_ptr<const bf16>(gout),
        device_ptr<float>(gq), device_ptr<float>(gk), device_ptr<float>(gv));
  });
  T6_CUDA_CHECK_LAUNCH(flash_attention_backward_tc);
}

}  // namespace flash_tc

}  // namespace t6
