// The fused decode step of the factorized attentions (tpa, tpa_kvonly): what T6Model::decode_step
// computes, as the backend's fused decode kernels (core/backend.h, "fused decode step"), five per layer:
//   decode_tpa_factors    rms_norm, the six factor projections, RoPE of B_q and B_k, the cache writes
//   tpa_decode_attention  FlashTPA over the cached factors (nn/flash_tpa_decode.h): two kernels on the GPU
//                         (split-KV, then the merge)
//   decode_linear         the attention's output projection and the residual
//   decode_swiglu         rms_norm, the MLP's two input projections and SwiGLU
//   decode_linear         the MLP's output projection and the residual
// with the embedding lookup folded into the first layer's decode_tpa_factors and the head (its rms_norm
// folded in) after the layers: 6 · n_layer + 1 kernels on the GPU, each launched while the one before
// still runs. Generation runs it (nn/decode_graph.h), on every device; the module path
// (T6Model::decode_step without weights) stays the reference it is tested against.
//
// The kernels read a copy of the weights made once when generation starts (DecodeWeights), in the dtype
// decode_weight_dtype picks: bfloat16 where the backend multiplies_bf16(), since a step at batch 1–8
// reads every weight once and halving their bytes halves that floor; else the model's own dtype. The
// model's weights stay as they are (float32 masters for training). The cache it writes and reads holds
// the factors in decode_cache_dtype: bfloat16 too where the weights are (halving the bytes FlashTPA reads
// per cached token, and taking the backend's tensor-core FlashTPA), else the model's dtype.
#pragma once
#include <vector>

#include "nn/t6_model.h"

namespace t6 {

struct DecodeWeights {
  struct Layer {
    Tensor factors;    // (N,d): the six factor projections' rows in decode_tpa_factors' order (core/backend.h)
    Tensor attn_proj;  // (d, H·dh)
    Tensor mlp_gate;   // (F,d): c_fc1
    Tensor mlp_up;     // (F,d): c_fc2
    Tensor mlp_proj;   // (d,F)
  };
  std::vector<Layer> layers;
  Tensor head;  // (V,d): the tied embedding
};

// bfloat16 where the device's backend multiplies_bf16(), else the parameters' dtype.
DType decode_weight_dtype(Device device, DType parameters);
DType decode_weight_dtype(const T6Model& model);
// The dtype of generation's KV cache: decode_weight_dtype for the factorized attentions (whose cache
// the fused step writes), the parameters' dtype for the others (their modules write it). The first
// form answers before a model exists (bench_decode's capacity table).
DType decode_cache_dtype(const ModelConfig& config, Device device, DType parameters);
DType decode_cache_dtype(const T6Model& model);
// The copy of a tpa or tpa_kvonly model's weights the fused step reads, in `dtype` (bfloat16 or the
// model's dtype), on the model's device.
DecodeWeights decode_weights(const T6Model& model, DType dtype);

// T6Model::decode_on_device with these weights (its caller checked the tokens and the cache), over a
// cache of the model's dtype or bfloat16.
Tensor fused_decode(const T6Model& model, const DecodeWeights& weights, const Tensor& device_tokens,
                    const DecodeSlots& step, KVCache& cache);

}  // namespace t6
