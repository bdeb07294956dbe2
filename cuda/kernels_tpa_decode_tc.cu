// FlashTPA decode attention over bfloat16 factors on the tensor cores: the first pass of
// Backend::tpa_decode_attention when the query and cache factors are bf16 (the float32 pass, the merge
// and the backend method are in cuda/kernels_tpa_decode.cu; the CPU twin is
// core/cpu/kernels_tpa_decode.cpp).
//
// Per cached token the work is RQ·R·dh + H·RQ·R + H·R·dh multiply-adds (~3.6K at the paper's decode
// shape H=32, dh=64, RQ=16, R=1) for 2R(H + dh) bf16 numbers read: more than the CUDA cores can do at
// the rate memory delivers them. So every step is an mma.sync product (cuda/mma_bf16.cuh) over a slice
// of 16 tokens, with the heads in groups of 16 (one warp per group and slice):
//   1. S1_s = B_k,s · B_qᵀ                  [16 tokens, RQ]   B_k and B_q come by ldmatrix
//   2. Lᵀ  += (A_q · S1_sᵀ) ∘ A_k,sᵀ         [16 heads, 16 tokens]
//      S1's accumulator registers (row g = token, cols 2t, 2t+1 = r) are, as they stand, the B
//      fragment of this product (col g = token, rows 2t, 2t+1 = r). They are rounded to bf16 as
//      hi + lo, two products instead of one, so the logits keep about 16 bits, not 8.
//   3. acc += Σ_u (P ∘ A_v,u) · B_v,u         [16 heads, dh]   P·A_v's registers are the A fragment
// With the heads as rows, the online softmax per head is a reduction over a quad of lanes, as in flash
// attention, and nothing but the factor tiles goes through shared memory. The plain query form (no
// A_q; q = the H rotated heads) is the same with each group's 16 heads as B_q and A_q = I.
//
// Split-KV as in the float32 pass: one block per (row, chunk), chunks sized to fill the GPU. A block's
// warps are (head group, token slice) pairs; the chunk streams through shared memory in stages of 64
// tokens, copied with cp.async up to two stages ahead of the warps, each warp taking its slice of every
// stage. At the end the block merges its slices' softmax states in shared memory and writes one state
// per chunk in the float32 pass's format, so the same merge kernel finishes. A short cache (at most 8
// chunks of at most kClusterStages stages) whose split would take more blocks than run at once skips
// that merge kernel: a row's blocks are one thread block cluster, and each block, once all have their
// state in shared memory, merges its share of the outputs from every block's state through distributed
// shared memory and writes them (no second launch, no round trip of the states through global memory).
#include <cooperative_groups.h>

#include <algorithm>
#include <cmath>

#include "cuda/cuda_check.h"
#include "cuda/dependent_launch.cuh"
#include "cuda/kernel_utils.cuh"
#include "cuda/mma_bf16.cuh"
#include "cuda/tpa_decode_split.h"

namespace t6 {

using kernels::bf16;

namespace {

constexpr int kStageTokens = 64;  // tokens per pipeline stage
constexpr int kStepTokens = 16;   // tokens per warp step: the rows of one mma
// Up to 4 token slices per head group: the paper's small T6 (3 groups) then takes one 16-token step per
// warp and stage, not two. The launch bounds keep 128 registers a thread, so that two blocks of up to 8
// warps still share a multiprocessor where their shared memory fits.
constexpr int kMaxWarps = 16;
constexpr int kMaxHeads = 128;
constexpr int kMaxStages = 3;
constexpr int kMaxCluster = 8;      // blocks per cluster that every sm_90 GPU schedules (the portable size)
constexpr int kClusterStages = 4;   // stages per block up to which a row's blocks merge as a cluster

// The block's layout, derived from the shapes on the host. Shared memory, in bf16 elements:
//   B_q [q_rows][ld_b] · A_q [groups·16][ld_aq] (factorized only) · stages × {B_k [R][64][ld_b],
//   B_v [R][64][ld_b], A_k [64][ld_a], A_v [64][ld_a]}
// B_k and B_v rows of one component u are contiguous (token-major within u), so an mma's 16 token
// rows are 16 consecutive rows. Every row is a multiple of 16 bytes plus 16 (ld = padded width + 8):
// ldmatrix's 8 row addresses then fall in distinct bank groups, and every row start is 16-byte aligned.
struct TcPlan {
  int dh_pad;          // head_dim rounded up to 32, 64 or 128 (the kernel's template size)
  int groups, slices;  // head groups of 16; token slices per stage (warps = groups · slices)
  int stages;
  int q_rows;          // rows of B_q in shared memory: RQ, or the H heads, rounded up to 16
  int ld_b, ld_aq, ld_a;
  int stage_elems;
  bool vector_b;       // whole 16-byte pieces per row of B_k/B_v (cp.async)
  int a_piece;         // elements per cp.async piece of an A_k/A_v row: 8 (16 bytes), 4 (8 bytes); 0: none fit
  bool vector_q;       // whole 16-byte pieces per row of B_q and A_q
  size_t query_bytes;  // B_q and A_q, before the stages
  size_t shared_bytes;
};

int round_up(int x, int to) { return (x + to - 1) / to * to; }

TcPlan make_plan(const DecodeShape& s, bool vectors, bool query_vectors) {
  const int H = static_cast<int>(s.H), R = static_cast<int>(s.R), dh = static_cast<int>(s.dh);
  TcPlan plan{};
  plan.dh_pad = dh <= 32 ? 32 : dh <= 64 ? 64 : 128;
  plan.groups = (H + 15) / 16;
  plan.slices = plan.groups * 4 <= kMaxWarps ? 4 : plan.groups * 2 <= kMaxWarps ? 2 : 1;
  const bool factorized = s.RQ > 0;
  plan.q_rows = round_up(static_cast<int>(factorized ? s.RQ : s.H), 16);
  plan.ld_b = plan.dh_pad + 8;
  plan.ld_aq = round_up(static_cast<int>(s.RQ), 16) + 8;
  plan.ld_a = round_up(H * R, 8) + 8;
  plan.stage_elems = 2 * R * kStageTokens * plan.ld_b + 2 * kStageTokens * plan.ld_a;
  const int threads = 32 * plan.groups * plan.slices;
  plan.vector_b = vectors && dh % 8 == 0;
  // A rows of H·R values: 16-byte pieces where they line up, else 8-byte ones (the paper's small T6 has
  // H·R = 68), since copies element by element hold each stage up on global loads.
  const int HR = H * R;
  plan.a_piece = !vectors ? 0 : HR % 8 == 0 && HR / 8 <= threads ? 8 : HR % 4 == 0 && HR / 4 <= threads ? 4 : 0;
  plan.vector_q = query_vectors && dh % 8 == 0 && s.RQ % 8 == 0;
  plan.query_bytes = sizeof(bf16) * (static_cast<size_t>(plan.q_rows) * plan.ld_b +
                                     (factorized ? static_cast<size_t>(plan.groups) * 16 * plan.ld_aq : 0));
  // The end-of-chunk merge reuses the stages: per warp 16 maxes, 16 sums and a 16 × dh_pad accumulator,
  // then the chunk's state (read by the cluster's blocks).
  const size_t merge = sizeof(float) * (plan.groups * plan.slices * 16 * (plan.dh_pad + 2) + partial_floats(s));
  static const int shared_limit = device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin);
  for (plan.stages = kMaxStages; plan.stages >= 2; --plan.stages) {
    plan.shared_bytes = plan.query_bytes + std::max(sizeof(bf16) * plan.stages * plan.stage_elems, merge);
    if (plan.shared_bytes <= static_cast<size_t>(shared_limit)) break;
  }
  T6_CHECK(plan.stages >= 2, "cuda tpa_decode_attention: bf16 factors of ", s.H, " heads with rank ", s.R,
           " and head_dim ", s.dh, " need ", plan.shared_bytes, " bytes of shared memory per block, more than this "
           "GPU's ", shared_limit, "; decode such a model in float32");
  return plan;
}

}  // namespace

namespace kernels {

// cp_async_16 (cuda/mma_bf16.cuh) for 8 bytes, which cp.async takes only as .ca (through L1).
__device__ __forceinline__ void cp_async_8(void* shared_dst, const void* global_src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(shared_address(shared_dst)), "l"(global_src),
               "r"(valid ? 8 : 0)
               : "memory");
}

// One stage's shared tiles.
struct StageTiles {
  bf16 *b_k, *b_v, *a_k, *a_v;  // [R][64][ld_b], [R][64][ld_b], [64][ld_a], [64][ld_a]
};

__device__ StageTiles stage_tiles(bf16* stages, const TcPlan& plan, int R, int stage) {
  StageTiles t;
  t.b_k = stages + stage * plan.stage_elems;
  t.b_v = t.b_k + R * kStageTokens * plan.ld_b;
  t.a_k = t.b_v + R * kStageTokens * plan.ld_b;
  t.a_v = t.a_k + kStageTokens * plan.ld_a;
  return t;
}

// A thread's share of the 16-byte pieces of a stage copy: piece `piece` of the rows first_row,
// first_row + row_step, … The same every stage, so worked out once: the copy loop itself then only adds.
struct CopyShare {
  int piece, first_row, row_step;
};

__device__ CopyShare copy_share(int pieces_per_row) {
  const int rows_per_pass = blockDim.x / pieces_per_row;  // ≥ 1: the plan keeps pieces_per_row ≤ threads
  if (static_cast<int>(threadIdx.x) >= rows_per_pass * pieces_per_row) return {0, 1 << 30, 1};  // idle
  return {static_cast<int>(threadIdx.x) % pieces_per_row, static_cast<int>(threadIdx.x) / pieces_per_row,
          rows_per_pass};
}

// The tokens [first_token, first_token + valid) of a row (valid ≤ 64) into a stage's tiles; the slots
// past `valid` are zero-filled instead (cached slots past the row's length are never read: they may hold
// anything, and 0·NaN would poison the products). B rows arrive as (token i, component u) = global row
// i·R + u and go to shared row u·64 + i. Where whole 16-byte pieces line up, cp.async (`b`, `a`: this
// thread's shares); else plain loads and stores, a path for awkward shapes only.
__device__ void load_stage(const StageTiles& t, const bf16* a_k, const bf16* b_k, const bf16* a_v, const bf16* b_v,
                           int64_t first_token, int valid, const DecodeShape& s, const TcPlan& plan, CopyShare b,
                           CopyShare a) {
  const int R = static_cast<int>(s.R), dh = static_cast<int>(s.dh), HR = static_cast<int>(s.H * s.R);
  const int64_t b_first = first_token * R * dh, a_first = first_token * HR;
  if (plan.vector_b) {
    for (int row = b.first_row; row < R * kStageTokens; row += b.row_step) {
      const int i = row % kStageTokens, u = row / kStageTokens;
      const bool ok = i < valid;
      const int64_t src = b_first + static_cast<int64_t>((ok ? i : 0) * R + u) * dh + b.piece * 8;
      const int dst = row * plan.ld_b + b.piece * 8;
      cp_async_16(t.b_k + dst, b_k + src, ok);
      cp_async_16(t.b_v + dst, b_v + src, ok);
    }
  } else {
    for (int e = threadIdx.x; e < R * kStageTokens * dh; e += blockDim.x) {
      const int row = e / dh, c = e % dh, i = row % kStageTokens, u = row / kStageTokens;
      const int64_t src = b_first + static_cast<int64_t>(i * R + u) * dh + c;
      const bool ok = i < valid;
      t.b_k[row * plan.ld_b + c] = ok ? b_k[src] : __float2bfloat16(0.f);
      t.b_v[row * plan.ld_b + c] = ok ? b_v[src] : __float2bfloat16(0.f);
    }
  }
  if (plan.a_piece > 0) {
    for (int i = a.first_row; i < kStageTokens; i += a.row_step) {
      const bool ok = i < valid;
      const int64_t src = a_first + static_cast<int64_t>(ok ? i : 0) * HR + a.piece * plan.a_piece;
      const int dst = i * plan.ld_a + a.piece * plan.a_piece;
      if (plan.a_piece == 8) {
        cp_async_16(t.a_k + dst, a_k + src, ok);
        cp_async_16(t.a_v + dst, a_v + src, ok);
      } else {
        cp_async_8(t.a_k + dst, a_k + src, ok);
        cp_async_8(t.a_v + dst, a_v + src, ok);
      }
    }
  } else {
    for (int e = threadIdx.x; e < kStageTokens * HR; e += blockDim.x) {
      const int i = e / HR, c = e % HR;
      const bool ok = i < valid;
      t.a_k[i * plan.ld_a + c] = ok ? a_k[a_first + e] : __float2bfloat16(0.f);
      t.a_v[i * plan.ld_a + c] = ok ? a_v[a_first + e] : __float2bfloat16(0.f);
    }
  }
}

// `rows` rows of `width` values, contiguous at src, into dst with rows `ld` apart: by cp.async where
// whole 16-byte pieces line up (`vectors`), else by plain loads and stores.
__device__ void load_rows(bf16* dst, int ld, const bf16* src, int rows, int width, bool vectors) {
  if (vectors) {
    const int pieces = width / 8;
    for (int e = threadIdx.x; e < rows * pieces; e += blockDim.x)
      cp_async_16(dst + e / pieces * ld + e % pieces * 8, src + e * 8, true);
  } else {
    for (int e = threadIdx.x; e < rows * width; e += blockDim.x) dst[e / width * ld + e % width] = src[e];
  }
}

// A bf16 pair register's halves as floats (a bf16 is the top half of a float32).
__device__ __forceinline__ float low_half(uint32_t pair) { return __uint_as_float(pair << 16); }
__device__ __forceinline__ float high_half(uint32_t pair) { return __uint_as_float(pair & 0xffff0000u); }

// The online softmax state of a warp's 16 heads: lane holds rows g and g+8 (index 0 and 1).
template <int kDh>
struct HeadState {
  float acc[kDh / 8][4];  // C layout: acc[n] is columns 8n…8n+7 of the [16 heads, dh] accumulator
  float max[2];           // log2 units: logit · log2 e
  float sum[2];           // this lane's share of Σ 2^(logit − max); the quad's lanes add up at the end
};

// Lᵀ [16 heads, 16 tokens] in log2 units for the tokens tok0… of a stage: lt[tt][e] is head
// group·16 + g + 8·(e/2), token tok0 + 8tt + 2t + e%2 (C layout of two 8-token column blocks).
template <int kDh>
__device__ __forceinline__ void step_logits(float (&lt)[2][4], const StageTiles& t, const bf16* bq, const bf16* aq,
                                            int tok0, int group, const DecodeShape& s, const TcPlan& plan) {
  const int lane = threadIdx.x % 32, g = lane >> 2, tq = lane & 3;
  const int R = static_cast<int>(s.R), H = static_cast<int>(s.H);
  const bool factorized = s.RQ > 0;
  // The plain form's A_q = I (16×16): a0 = a3 hold the ones where row g meets column 2t or 2t+1.
  const uint32_t one_lo = g == 2 * tq ? 0x3f80u : 0u, one_hi = g == 2 * tq + 1 ? 0x3f800000u : 0u;
  const uint32_t identity[4] = {one_lo | one_hi, 0u, 0u, one_lo | one_hi};
  const int q_steps = factorized ? plan.q_rows / 16 : 1;
#pragma unroll
  for (int tt = 0; tt < 2; ++tt) lt[tt][0] = lt[tt][1] = lt[tt][2] = lt[tt][3] = 0.f;
  for (int u = 0; u < R; ++u) {
    float mixed[2][4] = {};  // Σ_r A_q[h,r] S1[token,r,u], C layout as lt
    for (int kq = 0; kq < q_steps; ++kq) {
      const int q0 = factorized ? 16 * kq : 16 * group;  // B_q rows: query factors, or this group's heads
      float s1[2][4] = {};                                // S1 [16 tokens, r = q0…q0+15]
#pragma unroll
      for (int ks = 0; ks < kDh / 16; ++ks) {
        uint32_t a[4], b[4];
        load_a(a, t.b_k + u * kStageTokens * plan.ld_b, plan.ld_b, tok0, 16 * ks);
        load_b_transposed_tile(b, bq, plan.ld_b, q0, 16 * ks);
        mma_bf16(s1[0], a, b[0], b[1]);
        mma_bf16(s1[1], a, b[2], b[3]);
      }
      uint32_t w[4];
      if (factorized) {
        load_a(w, aq, plan.ld_aq, 16 * group, 16 * kq);
      } else {
        w[0] = identity[0], w[1] = identity[1], w[2] = identity[2], w[3] = identity[3];
      }
#pragma unroll
      for (int tt = 0; tt < 2; ++tt) {  // tokens 8tt…8tt+7: S1 rows g (+8 for tt = 1)
        const uint32_t hi0 = pack_bf16(s1[0][2 * tt], s1[0][2 * tt + 1]);
        const uint32_t hi1 = pack_bf16(s1[1][2 * tt], s1[1][2 * tt + 1]);
        const uint32_t lo0 = pack_bf16(s1[0][2 * tt] - low_half(hi0), s1[0][2 * tt + 1] - high_half(hi0));
        const uint32_t lo1 = pack_bf16(s1[1][2 * tt] - low_half(hi1), s1[1][2 * tt + 1] - high_half(hi1));
        mma_bf16(mixed[tt], w, hi0, hi1);
        mma_bf16(mixed[tt], w, lo0, lo1);
      }
    }
#pragma unroll
    for (int tt = 0; tt < 2; ++tt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int head = 16 * group + g + 8 * (e >> 1), token = tok0 + 8 * tt + 2 * tq + (e & 1);
        const float ak = head < H ? __bfloat162float(t.a_k[token * plan.ld_a + head * R + u]) : 0.f;
        lt[tt][e] += ak * mixed[tt][e];
      }
  }
}

// One warp step: the 16 tokens tok0… of a stage (`valid` of the stage's tokens are real) into the state.
template <int kDh>
__device__ __forceinline__ void attend_step(HeadState<kDh>& st, const StageTiles& t, const bf16* bq, const bf16* aq,
                                            int tok0, int valid, int group, float scale_log2, const DecodeShape& s,
                                            const TcPlan& plan) {
  const int lane = threadIdx.x % 32, g = lane >> 2, tq = lane & 3;
  const int R = static_cast<int>(s.R), H = static_cast<int>(s.H);
  float lt[2][4];
  step_logits<kDh>(lt, t, bq, aq, tok0, group, s, plan);
#pragma unroll
  for (int tt = 0; tt < 2; ++tt)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      lt[tt][e] = tok0 + 8 * tt + 2 * tq + (e & 1) < valid ? lt[tt][e] * scale_log2 : -INFINITY;

  // online softmax per head row: lt becomes P = 2^(logit − new max)
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float m = fmaxf(fmaxf(lt[0][2 * r], lt[0][2 * r + 1]), fmaxf(lt[1][2 * r], lt[1][2 * r + 1]));
    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
    const float new_max = fmaxf(st.max[r], m);
    const float base = new_max == -INFINITY ? 0.f : new_max;  // no token yet: keep 2^(−inf) = 0
    const float correction = exp2f(st.max[r] - base);
    float sum = 0.f;
#pragma unroll
    for (int tt = 0; tt < 2; ++tt)
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        lt[tt][2 * r + k] = exp2f(lt[tt][2 * r + k] - base);
        sum += lt[tt][2 * r + k];
      }
    st.sum[r] = st.sum[r] * correction + sum;
    st.max[r] = new_max;
#pragma unroll
    for (int n = 0; n < kDh / 8; ++n) st.acc[n][2 * r] *= correction, st.acc[n][2 * r + 1] *= correction;
  }

  // acc += Σ_u (P ∘ A_v,u) · B_v,u
  for (int u = 0; u < R; ++u) {
    float pv[2][4];
#pragma unroll
    for (int tt = 0; tt < 2; ++tt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int head = 16 * group + g + 8 * (e >> 1), token = tok0 + 8 * tt + 2 * tq + (e & 1);
        const float av = head < H ? __bfloat162float(t.a_v[token * plan.ld_a + head * R + u]) : 0.f;
        pv[tt][e] = lt[tt][e] * av;
      }
    // A fragment (rows = heads, cols = the 16 tokens): a0 = (g, 2t…) a1 = (g+8, 2t…) a2 = (g, 8+2t…) a3
    const uint32_t w[4] = {pack_bf16(pv[0][0], pv[0][1]), pack_bf16(pv[0][2], pv[0][3]),
                           pack_bf16(pv[1][0], pv[1][1]), pack_bf16(pv[1][2], pv[1][3])};
#pragma unroll
    for (int dp = 0; dp < kDh / 16; ++dp) {
      uint32_t b[4];
      load_b_tile(b, t.b_v + u * kStageTokens * plan.ld_b, plan.ld_b, tok0, 16 * dp);
      mma_bf16(st.acc[2 * dp], w, b[0], b[1]);
      mma_bf16(st.acc[2 * dp + 1], w, b[2], b[3]);
    }
  }
}

// The block's slices of each head group into one softmax state per chunk (tpa_decode_split.h format),
// through shared memory `scratch`: per warp 16 maxes, 16 sums, then the [16, dh_pad] accumulator.
template <int kDh>
__device__ __forceinline__ void write_chunk_state(HeadState<kDh>& st, float* scratch, float* state,
                                                  const DecodeShape& s, const TcPlan& plan) {
  const int lane = threadIdx.x % 32, g = lane >> 2, tq = lane & 3, warp = threadIdx.x / 32;
  const int per_warp = 16 * (kDh + 2);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    st.sum[r] += __shfl_xor_sync(0xffffffffu, st.sum[r], 1);
    st.sum[r] += __shfl_xor_sync(0xffffffffu, st.sum[r], 2);
  }
  cp_async_wait<0>();
  __syncthreads();  // every warp is done with the stages, which the scratch overwrites
  float* mine = scratch + warp * per_warp;
  if (tq == 0)
    for (int r = 0; r < 2; ++r) mine[g + 8 * r] = st.max[r], mine[16 + g + 8 * r] = st.sum[r];
#pragma unroll
  for (int n = 0; n < kDh / 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) mine[32 + (g + 8 * (e >> 1)) * kDh + 8 * n + 2 * tq + (e & 1)] = st.acc[n][e];
  __syncthreads();
  const int H = static_cast<int>(s.H), dh = static_cast<int>(s.dh);
  for (int e = threadIdx.x; e < H * dh; e += blockDim.x) {
    const int h = e / dh, j = e % dh, row = h % 16;
    const float* first = scratch + (h / 16) * plan.slices * per_warp;  // the group's slices, one per warp
    float overall = -INFINITY;
    for (int w = 0; w < plan.slices; ++w) overall = fmaxf(overall, first[w * per_warp + row]);
    float sum = 0.f, acc = 0.f;
    for (int w = 0; w < plan.slices; ++w) {
      const float* part = first + w * per_warp;
      const float f = part[row] == -INFINITY ? 0.f : exp2f(part[row] - overall);
      sum += f * part[16 + row];
      acc += f * part[32 + row * kDh + j];
    }
    state[2 * H + h * dh + j] = acc;
    if (j == 0) state[h] = overall * kLn2, state[H + h] = sum;  // the merge works in natural-log units
  }
}

// A row's cluster of blocks, each with its chunk's state in shared memory (`state`, the partials'
// format), into out (H,dh) of that row: each block takes every blocks-th output and rescales the
// cluster's states to their overall max, out = value_scale · Σ_c f_c acc_c / Σ_c f_c sum_c, as the
// merge kernel does.
__device__ void merge_cluster(const float* state, float* out, const DecodeShape& s) {
  namespace cg = cooperative_groups;
  const cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();  // every block's state is written and visible to the cluster
  const int blocks = static_cast<int>(cluster.num_blocks()), H = static_cast<int>(s.H), dh = static_cast<int>(s.dh);
  for (int e = cluster.block_rank() * blockDim.x + threadIdx.x; e < H * dh; e += blocks * blockDim.x) {
    const int h = e / dh;
    float overall = -INFINITY;
    for (int c = 0; c < blocks; ++c) overall = fmaxf(overall, cluster.map_shared_rank(state, c)[h]);
    float sum = 0.f, acc = 0.f;
    for (int c = 0; c < blocks; ++c) {
      const float* peer = cluster.map_shared_rank(state, c);
      const float f = peer[h] == -INFINITY ? 0.f : expf(peer[h] - overall);  // a chunk past the row's length
      sum += f * peer[H + h];
      acc += f * peer[2 * H + e];
    }
    out[e] = sum > 0.f ? acc * s.value_scale / sum : 0.f;
  }
  cluster.sync();  // no block leaves (and frees its shared memory) while another still reads it
}

// Block x = row b · chunks + chunk c attends to the cached tokens [c·chunk, min((c+1)·chunk,
// lengths[b])) of row b and writes its softmax state to partials; or, with s.cluster, merges it with
// the row's other chunks (merge_cluster) into out.
template <int kDh>
__global__ void __launch_bounds__(32 * kMaxWarps, 1)
    tpa_decode_tc(const bf16* __restrict__ a_q, const bf16* __restrict__ b_q, const bf16* __restrict__ a_k,
                  const bf16* __restrict__ b_k, const bf16* __restrict__ a_v, const bf16* __restrict__ b_v,
                  const int32_t* __restrict__ lengths, float* __restrict__ partials, float* __restrict__ out,
                  DecodeShape s, TcPlan plan) {
  wait_for_previous_kernel();  // dependent launch: every input comes from the kernels before
  allow_next_kernel();
  const int64_t b = blockIdx.x / s.chunks, c = blockIdx.x % s.chunks;
  const int64_t begin = c * s.chunk, end = min(begin + s.chunk, int64_t{lengths[b]});
  // A chunk past this row's length has nothing to do, but in a cluster it still takes part in the merge
  // (an empty state: max −inf, sum 0).
  if (begin >= end && !s.cluster) return;
  const bool factorized = s.RQ > 0;
  const int warp = threadIdx.x / 32, group = warp / plan.slices, slice = warp % plan.slices;

  extern __shared__ __align__(16) unsigned char shared_raw[];
  bf16* bq = reinterpret_cast<bf16*>(shared_raw);  // [q_rows][ld_b]
  bf16* aq = bq + plan.q_rows * plan.ld_b;          // [groups·16][ld_aq]
  bf16* stages = aq + (factorized ? plan.groups * 16 * plan.ld_aq : 0);
  const int Q = static_cast<int>(s.Q), dh = static_cast<int>(s.dh), RQ = static_cast<int>(s.RQ);
  // Zero first where padding enters the products: the padding rows and columns of B_q and A_q, and the
  // tiles' columns past head_dim, which the copies never write.
  const size_t zero_bytes = dh == plan.dh_pad ? plan.query_bytes : plan.shared_bytes;
  for (size_t e = threadIdx.x; e < zero_bytes / 16; e += blockDim.x)
    reinterpret_cast<uint4*>(shared_raw)[e] = make_uint4(0u, 0u, 0u, 0u);
  __syncthreads();
  auto load_query = [&] {
    load_rows(bq, plan.ld_b, b_q + b * Q * dh, Q, dh, plan.vector_q);
    if (factorized) load_rows(aq, plan.ld_aq, a_q + b * s.H * RQ, static_cast<int>(s.H), RQ, plan.vector_q);
  };
  if (plan.vector_q) load_query();  // cp.async, complete with the first stage

  const int tiles = begin < end ? static_cast<int>((end - begin + kStageTokens - 1) / kStageTokens) : 0;
  const CopyShare b_share = plan.vector_b ? copy_share(dh / 8) : CopyShare{};
  const CopyShare a_share = plan.a_piece > 0 ? copy_share(static_cast<int>(s.H * s.R) / plan.a_piece) : CopyShare{};
  auto issue = [&](int tile) {
    const int64_t t0 = begin + int64_t{tile} * kStageTokens;
    load_stage(stage_tiles(stages, plan, static_cast<int>(s.R), tile % plan.stages), a_k, b_k, a_v, b_v,
               b * s.M + t0, static_cast<int>(min(int64_t{kStageTokens}, end - t0)), s, plan, b_share, a_share);
  };
  for (int tile = 0; tile < plan.stages - 1; ++tile) {
    if (tile < tiles) issue(tile);
    cp_async_commit();
  }
  if (!plan.vector_q) load_query();  // plain loads, while the first stages stream in

  HeadState<kDh> st;
#pragma unroll
  for (int n = 0; n < kDh / 8; ++n) st.acc[n][0] = st.acc[n][1] = st.acc[n][2] = st.acc[n][3] = 0.f;
  st.max[0] = st.max[1] = -INFINITY, st.sum[0] = st.sum[1] = 0.f;
  const float scale_log2 = s.logit_scale * kLog2e;
  const int slice_tokens = kStageTokens / plan.slices;
  for (int tile = 0; tile < tiles; ++tile) {
    if (plan.stages == 3) {
      cp_async_wait<1>();  // this tile's group is complete; the next one may still be in flight
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();  // the tile is visible to all, and the buffer loaded next was released by all
    if (tile + plan.stages - 1 < tiles) issue(tile + plan.stages - 1);
    cp_async_commit();
    const int valid = static_cast<int>(min(int64_t{kStageTokens}, end - begin - int64_t{tile} * kStageTokens));
    const StageTiles t = stage_tiles(stages, plan, static_cast<int>(s.R), tile % plan.stages);
    for (int tok0 = slice * slice_tokens; tok0 < (slice + 1) * slice_tokens && tok0 < valid; tok0 += kStepTokens)
      attend_step<kDh>(st, t, bq, aq, tok0, valid, group, scale_log2, s, plan);
  }
  float* scratch = reinterpret_cast<float*>(stages);
  if (!s.cluster) return write_chunk_state<kDh>(st, scratch, partials + blockIdx.x * partial_floats(s), s, plan);
  float* state = scratch + plan.groups * plan.slices * 16 * (kDh + 2);  // past the warps' parts (make_plan)
  write_chunk_state<kDh>(st, scratch, state, s, plan);
  merge_cluster(state, out + b * s.H * s.dh, s);
}

}  // namespace kernels

DecodeShape split_tpa_decode_bf16(DecodeShape s, int64_t batch) {
  T6_CHECK(s.dh <= 128 && s.H <= kMaxHeads, "cuda tpa_decode_attention: bf16 factors take head_dim ≤ 128 and at "
           "most ", kMaxHeads, " heads, got head_dim ", s.dh, " and ", s.H, " heads; decode in float32");
  // throws now, before the caller allocates, if the shared memory does not fit
  const TcPlan plan = make_plan(s, true, true);
  static const int sms = device_attribute(cudaDevAttrMultiProcessorCount);
  static const int sm_shared = device_attribute(cudaDevAttrMaxSharedMemoryPerMultiprocessor);
  static const bool clusters = device_attribute(cudaDevAttrClusterLaunch) != 0;
  s.tile = kStageTokens;
  // About two blocks per SM over the batch (the launch bounds let two share one), each whole stages;
  // cut from the capacity M, as in the float32 pass (the lengths live on the GPU).
  const int64_t chunks_wanted = (2 * int64_t{sms} + batch - 1) / batch;
  s.chunk = ((s.M + chunks_wanted - 1) / chunks_wanted + s.tile - 1) / s.tile * s.tile;
  s.chunks = (s.M + s.chunk - 1) / s.chunk;
  // A short cache whose blocks would not all run at once (the paper's small T6 fits one block per SM:
  // 136 blocks at batch 8 and 1K, then a merge kernel): a row in at most kMaxCluster chunks of at most
  // kClusterStages stages, one cluster. Where they do run at once (batch 1), chunks of one stage and the
  // merge kernel were measured faster than a cluster's blocks taking three stages each (docs/PERF.md).
  const int64_t per_sm = std::clamp<int64_t>(sm_shared / static_cast<int64_t>(plan.shared_bytes + 1024), 1, 2);
  const int64_t cluster_chunk = ((s.M + kMaxCluster - 1) / kMaxCluster + s.tile - 1) / s.tile * s.tile;
  s.cluster = clusters && cluster_chunk <= kClusterStages * s.tile && batch * s.chunks > per_sm * sms;
  if (s.cluster) {
    s.chunk = cluster_chunk;
    s.chunks = (s.M + s.chunk - 1) / s.chunk;
  }
  return s;
}

namespace {

template <int kDh>
void launch_tpa_decode_tc(const DecodeShape& s, const TcPlan& plan, int64_t batch, const void* a_q, const void* b_q,
                          const void* a_k, const void* b_k, const void* a_v, const void* b_v, const int32_t* lengths,
                          float* partials, float* out, cudaStream_t stream) {
  static size_t shared_allowed = 0;  // the kernel's dynamic shared-memory limit, raised as needed
  if (plan.shared_bytes > shared_allowed) {
    T6_CUDA_CHECK(cudaFuncSetAttribute(kernels::tpa_decode_tc<kDh>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(plan.shared_bytes)));
    // All of the unified L1/shared storage as shared memory, so that two blocks fit on a multiprocessor.
    T6_CUDA_CHECK(cudaFuncSetAttribute(kernels::tpa_decode_tc<kDh>, cudaFuncAttributePreferredSharedMemoryCarveout,
                                       cudaSharedmemCarveoutMaxShared));
    shared_allowed = plan.shared_bytes;
  }
  launch_dependent_clusters(kernels::tpa_decode_tc<kDh>, dim3(static_cast<unsigned>(batch * s.chunks)),
                            dim3(32 * plan.groups * plan.slices), s.cluster ? static_cast<unsigned>(s.chunks) : 0,
                            plan.shared_bytes, stream, static_cast<const bf16*>(a_q), static_cast<const bf16*>(b_q),
                            static_cast<const bf16*>(a_k), static_cast<const bf16*>(b_k),
                            static_cast<const bf16*>(a_v), static_cast<const bf16*>(b_v), lengths, partials, out, s,
                            plan);
}

}  // namespace

void tpa_decode_bf16(const DecodeShape& s, int64_t batch, const void* a_q, const void* b_q, const void* a_k,
                     const void* b_k, const void* a_v, const void* b_v, const int32_t* lengths, float* partials,
                     float* out, cudaStream_t stream) {
  auto aligned16 = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const TcPlan plan = make_plan(s, aligned16(a_k) && aligned16(b_k) && aligned16(a_v) && aligned16(b_v),
                                aligned16(b_q) && (a_q == nullptr || aligned16(a_q)));
  switch (plan.dh_pad) {
    case 32: return launch_tpa_decode_tc<32>(s, plan, batch, a_q, b_q, a_k, b_k, a_v, b_v, lengths, partials, out,
                                             stream);
    case 64: return launch_tpa_decode_tc<64>(s, plan, batch, a_q, b_q, a_k, b_k, a_v, b_v, lengths, partials, out,
                                             stream);
    default: return launch_tpa_decode_tc<128>(s, plan, batch, a_q, b_q, a_k, b_k, a_v, b_v, lengths, partials, out,
                                              stream);
  }
}

}  // namespace t6
