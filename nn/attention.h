// The attention interface shared by every variant of the spec ("tpa", "tpa_kvonly", "mha", "gqa",
// "mqa"), and the causal scaled-dot-product attention they all end with.
#pragma once
#include <memory>

#include "core/random.h"
#include "nn/kv_cache.h"
#include "nn/model_config.h"
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

// Builds the variant named by config.attention, initialised from `gen`.
std::unique_ptr<Attention> make_attention(const ModelConfig& config, Generator& gen);

// softmax(q kᵀ · scale + causal mask) v per head: q (B,Tq,H,dh), k and v (B,Tk,Hkv,dh) with Hkv dividing
// H (query head h reads key/value head h / (H/Hkv)); the Tq queries are the last Tq of the Tk positions.
// Returns the heads concatenated head-major: (B,Tq,H·dh). On a GPU this is the fused flash_attention
// op (autograd/ops/flash_attention.cpp); on the CPU, and as the reference the tests compare the fused
// op with, it is composite_causal_attention: a batched matmul, a causal softmax and a second matmul.
Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale);
Tensor composite_causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale);

}  // namespace t6
