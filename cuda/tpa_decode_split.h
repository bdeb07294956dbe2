// The split-KV layout that the FlashTPA decode kernels share (cuda/kernels_tpa_decode.cu: the float32
// first pass; cuda/kernels_tpa_decode_tc.cu: the bf16 tensor-core first pass). Each row's cache is cut
// into chunks; one block per (row, chunk) leaves a softmax state, and the merge runs in the same kernel:
// the last block of each group of chunks to finish merges the group's states into one, and the last
// group of the row to finish merges those into the row's output. A counter per group and per row, in
// memory the backend keeps zeroed between launches (each last block resets its counter), tells a block
// whether it is the last. Two levels of about sqrt(chunks) states each keep the one block that finishes
// a row from reading every chunk's state alone (a row of a long cache has over a hundred).
#pragma once
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>

namespace t6 {

// The sizes a block works with. Q is how many query rows meet each B_k row: RQ factors, or H heads.
struct DecodeShape {
  int64_t H, RQ, R, dh, M, Q;
  int64_t tile, chunk, chunks;  // tokens per tile; tokens per chunk (a multiple of tile); chunks per row
  int64_t group, groups;        // chunks per merge group; groups per row
  float logit_scale, value_scale;
};

// The softmax state one (row, chunk) block leaves for the merge: max [H] (natural-log units: the
// largest logit), sum [H] of exp(logit − max), acc [H,dh] of Σ exp(logit − max) · value.
__host__ __device__ inline int64_t partial_floats(const DecodeShape& s) { return s.H * (s.dh + 2); }

// Merge groups of about sqrt(chunks) chunks: fills s.group and s.groups from s.chunks.
inline DecodeShape with_merge_groups(DecodeShape s) {
  s.group = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(s.chunks))));
  s.groups = (s.chunks + s.group - 1) / s.group;
  return s;
}
// The partial states of `batch` rows: chunk states [batch, chunks], then group states [batch, groups].
inline int64_t partial_states(const DecodeShape& s, int64_t batch) { return batch * (s.chunks + s.groups); }
// The counters of `batch` rows: one per group, then one per row.
inline int64_t merge_counters(const DecodeShape& s, int64_t batch) { return batch * (s.groups + 1); }

// The bf16 first pass: fills s.tile, s.chunk and s.chunks for `batch` rows (throws, naming the limit,
// for shapes it does not take), then, given room for the partial states and the counters, runs the
// whole attention into out.
DecodeShape split_tpa_decode_bf16(DecodeShape s, int64_t batch);
void tpa_decode_bf16(const DecodeShape& s, int64_t batch, const void* a_q, const void* b_q, const void* a_k,
                     const void* b_k, const void* a_v, const void* b_v, const int32_t* lengths, float* partials,
                     unsigned* counters, float* out, cudaStream_t stream);

#ifdef __CUDACC__
namespace kernels {

// n softmax states at src (partial_floats apart) into one: rescaled to their overall max and summed.
// With `normalize`, out [H,dh] = value_scale · acc / sum; else a state in the same format at out. The
// states come from other blocks, so they are read through L2 (__ldcg), past this multiprocessor's L1.
__device__ inline void merge_states(const float* src, int64_t n, float* out, bool normalize, const DecodeShape& s) {
  const int64_t H = s.H, dh = s.dh, stride = partial_floats(s);
  for (int64_t e = threadIdx.x; e < H * dh; e += blockDim.x) {
    const int64_t h = e / dh, j = e % dh;
    float overall = -INFINITY;
    for (int64_t c = 0; c < n; ++c) overall = fmaxf(overall, __ldcg(src + c * stride + h));
    float sum = 0.f, acc = 0.f;
#pragma unroll 4
    for (int64_t c = 0; c < n; ++c) {
      const float* state = src + c * stride;
      const float f = expf(__ldcg(state + h) - overall);
      sum += f * __ldcg(state + H + h);
      acc += f * __ldcg(state + 2 * H + e);
    }
    if (normalize) {
      out[e] = sum > 0.f ? s.value_scale * acc / sum : 0.f;
    } else {
      out[2 * H + e] = acc;
      if (j == 0) out[h] = overall, out[H + h] = sum;
    }
  }
}

// Counts this block in at `counter` after its writes; true (in every thread) for the last of `expected`
// blocks, which also resets the counter for the next launch. Every thread of the block must call it.
__device__ inline bool last_to_arrive(unsigned* counter, unsigned expected) {
  __shared__ bool last;
  __threadfence();  // this block's state is visible to the block that merges it
  __syncthreads();
  if (threadIdx.x == 0) {
    last = atomicAdd(counter, 1u) == expected - 1;
    if (last) atomicExch(counter, 0u);
  }
  __syncthreads();
  if (last) __threadfence();  // the other blocks' states are read after their arrival
  return last;
}

// The end of a first-pass block of row b, chunk c, after its state is written: the merges it is the
// last to finish. out (B,H,dh) float32.
__device__ inline void merge_when_last(float* partials, unsigned* counters, const int32_t* lengths, float* out,
                                       int64_t b, int64_t c, int64_t batch, const DecodeShape& s) {
  const int64_t stride = partial_floats(s);
  const int64_t used = (lengths[b] + s.chunk - 1) / s.chunk, groups_used = (used + s.group - 1) / s.group;
  const int64_t g = c / s.group, in_group = min(s.group, used - g * s.group);
  float* chunk_states = partials + (b * s.chunks + g * s.group) * stride;
  float* row_out = out + b * s.H * s.dh;
  if (!last_to_arrive(counters + b * (s.groups + 1) + g, static_cast<unsigned>(in_group))) return;
  if (groups_used == 1) return merge_states(chunk_states, in_group, row_out, true, s);
  float* group_states = partials + (batch * s.chunks + b * s.groups) * stride;
  merge_states(chunk_states, in_group, group_states + g * stride, false, s);
  if (!last_to_arrive(counters + b * (s.groups + 1) + s.groups, static_cast<unsigned>(groups_used))) return;
  merge_states(group_states, groups_used, row_out, true, s);
}

}  // namespace kernels
#endif

}  // namespace t6
