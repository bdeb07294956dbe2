// The interface every attention variant of the spec implements (AttentionKind: TPA and TPA-KVonly in
// nn/tpa_attention.h, the MHA/GQA/MQA baselines in nn/gqa_attention.h): training forward, and the
// prefill and decode steps of generation over the layer's KV cache.
#pragma once
#include "nn/kv_cache.h"
#include "nn/module.h"

namespace t6 {

class Attention : public Module {
 public:
  // x (B,T,d) at int32 positions (B,T) → (B,T,d), each token attending to itself and earlier ones.
  virtual Tensor forward(const Tensor& x, const Tensor& positions) const = 0;

  // Generation with this layer's KV cache (nn/kv_cache.h; T6Model::prefill and decode_step drive these).
  // prefill: forward() of x (B,T,d) at positions 0…T−1 that also stores the T tokens' cache entries
  // in slots [0, T) of every row.
  virtual Tensor prefill(const Tensor& x, const Tensor& positions, LayerKVCache& cache) const = 0;
  // decode: one new token per row, x (B,1,d) at step.positions (B,1); row b's token is stored in slot
  // step.slots[b] (its position) and attends to slots [0, step.slots[b]] of its row. → (B,1,d)
  virtual Tensor decode(const Tensor& x, const DecodeSlots& step, LayerKVCache& cache) const = 0;
};

}  // namespace t6
