// Decode attention over cached key and value heads, what the baselines (mha, gqa, mqa) run when
// generating: the new query of each row attends to the first lengths[b] slots of its row of the
// head-major cache (nn/kv_cache.h), its own entry included. GQAAttention::decode calls it.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace t6 {

// q (B,H,dh); k_cache and v_cache head-major (B,Hkv,M,dh), with Hkv dividing H (query head h reads
// key/value head h / (H/Hkv)) → (B,H,dh). Scores are formed against all M slots straight from the cache
// (no copy of it), and the slots past a row's length are masked out before the softmax.
Tensor cached_heads_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                           const std::vector<int64_t>& lengths);

}  // namespace t6
