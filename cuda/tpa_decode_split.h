// The split-KV layout that the FlashTPA decode kernels share (cuda/kernels_tpa_decode.cu: the float32
// first pass and the merge; cuda/kernels_tpa_decode_tc.cu: the bf16 tensor-core first pass). Each row's
// cache is cut into chunks; one block per (row, chunk) leaves a softmax state that the merge combines.
// A short cache (bf16 only) is cut into at most 8 chunks whose blocks form one thread block cluster per
// row: they merge their states through distributed shared memory and write the output themselves, so
// the call is one kernel without a round trip of the states through global memory.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace t6 {

// The sizes a block works with. Q is how many query rows meet each B_k row: RQ factors, or H heads.
struct DecodeShape {
  int64_t H, RQ, R, dh, M, Q;
  int64_t tile, chunk, chunks;  // tokens per tile; tokens per chunk (a multiple of tile); chunks per row
  bool cluster;                 // a row's chunks are one cluster that merges on chip (chunks ≤ 8)
  float logit_scale, value_scale;
};

// The softmax state one (row, chunk) block leaves for the merge: max [H] (natural-log units: the
// largest logit), sum [H] of exp(logit − max), acc [H,dh] of Σ exp(logit − max) · value.
__host__ __device__ inline int64_t partial_floats(const DecodeShape& s) { return s.H * (s.dh + 2); }

// The bf16 pass: fills s.tile, s.chunk, s.chunks and s.cluster for `batch` rows (throws, naming the
// limit, for shapes it does not take), then writes the B·chunks partial states, once the caller has
// them; or, with s.cluster, the output (B,H,dh) itself (partials unused).
DecodeShape split_tpa_decode_bf16(DecodeShape s, int64_t batch);
void tpa_decode_bf16(const DecodeShape& s, int64_t batch, const void* a_q, const void* b_q, const void* a_k,
                     const void* b_k, const void* a_v, const void* b_v, const int32_t* lengths, float* partials,
                     float* out, cudaStream_t stream);

}  // namespace t6
