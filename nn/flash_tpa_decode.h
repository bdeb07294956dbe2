// Decode attention: one new query per row attends to the first lengths[b] tokens of its row of a
// layer's KV cache (nn/kv_cache.h), the new token's own entry included.
//
// flash_tpa_decode is what TPA generation runs: the FlashTPA formulation of the spec, computed from the
// cached factors without forming K or V (head-shared feature dot products, per-head rank mixing, online
// softmax over blocks of cached tokens, values aggregated through A_v then B_v), as one backend kernel
// (Backend::tpa_decode_attention). Its cost per token grows with M·(RQ·R·dh + H·RQ·R + H·R·dh)
// instead of the 2·M·H·dh of attention over full heads.
//
// cached_heads_decode is plain attention over cached key and value heads (what mha/gqa/mqa run), and
// materialized_tpa_decode forms K and V from the factors and then does the same: the reference the
// factor-space path is tested against.
#pragma once
#include <vector>

#include "core/tensor.h"
#include "nn/kv_cache.h"

namespace t6 {

// The query of one new token per row.
struct TPAQuery {
  Tensor a_q;  // (B,H,RQ) for "tpa"; undefined for "tpa_kvonly", whose query is a plain projection
  Tensor b_q;  // (B,RQ,dh) rotated for "tpa"; for "tpa_kvonly" the rotated query heads (B,H,dh)
};

// → (B,H,dh): softmax(q·kᵀ/sqrt(dh)) v per head over the cached factors of each row.
Tensor flash_tpa_decode(const TPAQuery& query, const LayerKVCache& cache, const std::vector<int64_t>& lengths);
// The same with the lengths already on the cache's device, int32 (B), each in [1, M]: what generation
// passes (DecodeSlots::device_lengths, checked and uploaded once per step for every layer).
Tensor flash_tpa_decode(const TPAQuery& query, const LayerKVCache& cache, const Tensor& lengths);
Tensor materialized_tpa_decode(const TPAQuery& query, const LayerKVCache& cache, const std::vector<int64_t>& lengths);

// q (B,H,dh); k_cache and v_cache head-major (B,Hkv,M,dh), with Hkv dividing H (query head h reads
// key/value head h / (H/Hkv)) → (B,H,dh). Scores are formed against all M slots straight from the cache
// (no copy of it), and the slots past a row's length are masked out before the softmax.
Tensor cached_heads_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                           const std::vector<int64_t>& lengths);

}  // namespace t6
