// FlashTPA, the decode attention of TPA generation (spec "Inference with the factorized KV cache",
// paper Algorithm 2): the new token of each row attends to the first lengths[b] tokens of its row of a
// layer's factor cache (nn/kv_cache.h), its own entry included, computed from the cached factors
// without forming K or V (head-shared feature dot products, per-head rank mixing, online softmax over
// blocks of cached tokens, values aggregated through A_v then B_v), as one backend kernel
// (Backend::tpa_decode_attention). Its cost per token grows with M·(RQ·R·dh + H·RQ·R + H·R·dh) instead
// of the 2·M·H·dh of attention over full heads. TPAAttention::decode calls it.
#pragma once
#include <vector>

#include "core/tensor.h"
#include "nn/kv_cache.h"

namespace t6 {

// The query of one new token per row.
struct TPAQuery {
  Tensor a_q;  // (B,H,RQ) for tpa; undefined for tpa_kvonly, whose query is a plain projection
  Tensor b_q;  // (B,RQ,dh) rotated for tpa; for tpa_kvonly the rotated query heads (B,H,dh)
};

// → (B,H,dh): softmax(q·kᵀ/sqrt(dh)) v per head over the cached factors of each row, with the lengths
// on the host, checked against the cache. Query and cache share one dtype; the result has it too,
// except that bfloat16 factors give a float32 result.
Tensor flash_tpa_decode(const TPAQuery& query, const LayerKVCache& cache, const std::vector<int64_t>& lengths);
// The same with the lengths already on the cache's device, int32 (B), each in [1, M]: what generation
// passes (DecodeSlots::device_lengths, checked and uploaded once per step for every layer).
Tensor flash_tpa_decode(const TPAQuery& query, const LayerKVCache& cache, const Tensor& lengths);

}  // namespace t6
