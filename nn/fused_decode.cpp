#include "nn/fused_decode.h"

#include "autograd/node.h"
#include "core/backend.h"
#include "nn/flash_tpa_decode.h"
#include "nn/tpa_attention.h"

namespace t6 {

DType decode_weight_dtype(Device device, DType parameters) {
  return backend(device).multiplies_bf16() ? DType::BF16 : parameters;
}
DType decode_weight_dtype(const T6Model& model) {
  return decode_weight_dtype(model.device(), model.transformer.wte.weight.dtype());
}

DType decode_cache_dtype(const ModelConfig& config, Device device, DType parameters) {
  return config.factorized_kv() ? decode_weight_dtype(device, parameters) : parameters;
}
DType decode_cache_dtype(const T6Model& model) {
  return decode_cache_dtype(model.config, model.device(), model.transformer.wte.weight.dtype());
}

DecodeWeights decode_weights(const T6Model& model, DType dtype) {
  T6_CHECK(model.config.factorized_kv(), "decode_weights: the fused decode step serves the factorized attentions ",
           "(tpa, tpa_kvonly), not ", model.config.attention_name());
  T6_CHECK(dtype == DType::BF16 || dtype == model.transformer.wte.weight.dtype(), "decode_weights: a copy in ",
           dtype_name(dtype), "; use bfloat16 or the model's ", dtype_name(model.transformer.wte.weight.dtype()));
  NoGradGuard no_grad;
  DecodeWeights w;
  for (size_t i = 0; i < model.transformer.h.size(); ++i) {
    const Block& block = model.transformer.block(i);
    const auto& attn = dynamic_cast<const TPAAttention&>(block.attn);
    const TPAFactorProjections& f = attn.c_qkv;
    std::vector<Tensor> rows;  // decode_tpa_factors' order: the rows stored as they are, then the rotated ones
    if (f.W_A_q) rows.push_back(f.W_A_q->weight);
    rows.insert(rows.end(), {f.W_A_k.weight, f.W_A_v.weight, f.W_B_v.weight});
    rows.push_back(f.W_B_q ? f.W_B_q->weight : attn.c_q->weight);
    rows.push_back(f.W_B_k.weight);
    DecodeWeights::Layer layer;
    layer.factors = concat(rows, 0).to_dtype(dtype);
    layer.attn_proj = attn.c_proj.weight.to_dtype(dtype);
    layer.mlp_gate = block.mlp.c_fc1.weight.to_dtype(dtype);
    layer.mlp_up = block.mlp.c_fc2.weight.to_dtype(dtype);
    layer.mlp_proj = block.mlp.c_proj.weight.to_dtype(dtype);
    w.layers.push_back(std::move(layer));
  }
  w.head = model.transformer.wte.weight.to_dtype(dtype);
  return w;
}

Tensor fused_decode(const T6Model& model, const DecodeWeights& weights, const Tensor& device_tokens,
                    const DecodeSlots& step, KVCache& cache) {
  NoGradGuard no_grad;
  const ModelConfig& c = model.config;
  const int64_t B = cache.batch(), d = c.n_embd, H = c.n_head, RQ = c.factorized_query() ? c.q_rank : 0,
                dh = c.head_dim;
  T6_CHECK(weights.layers.size() == static_cast<size_t>(c.n_layer), "fused_decode: weights of ",
           weights.layers.size(), " layers for a model of ", c.n_layer);
  Backend& device = backend(model.device());
  const DType dtype = model.transformer.wte.weight.dtype();
  const DType cache_dtype = cache.layer(0).a_k.dtype();  // the query factors go with the cache's
  T6_CHECK(cache_dtype == dtype || (cache_dtype == DType::BF16 && dtype == DType::F32), "fused_decode: a cache of ",
           dtype_name(cache_dtype), " for a model of ", dtype_name(dtype),
           "; use the model's dtype or, for a float32 model, bfloat16 (decode_cache_dtype)");
  Backend::TPAFactors p;
  p.batch = B, p.d = d, p.heads = H, p.q_rank = RQ, p.rank = c.rank, p.head_dim = dh, p.capacity = cache.capacity();
  p.norm_eps = c.norm_eps;
  const Tensor positions = step.positions.contiguous_data().view({B});
  const Tensor tokens = device_tokens.contiguous_data();

  Tensor x = empty({B, d}, dtype, model.device());  // the first layer's step looks the tokens up into it
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    const DecodeWeights::Layer& w = weights.layers[i];
    LayerKVCache& layer_cache = cache.layer(i);
    TPAQuery query;  // the new token's query factors; its key/value factors go straight into the cache
    if (RQ > 0) query.a_q = empty({B, H, RQ}, cache_dtype, model.device());
    query.b_q = empty(RQ > 0 ? Shape{B, RQ, dh} : Shape{B, H, dh}, cache_dtype, model.device());
    const Tensor embedding = i == 0 ? model.transformer.wte.weight : Tensor();
    device.decode_tpa_factors(p, x, embedding, tokens, w.factors, positions, query.a_q, query.b_q, layer_cache.a_k,
                              layer_cache.b_k, layer_cache.a_v, layer_cache.b_v);
    // float32 from a bfloat16 cache (flash_tpa_decode): the model's dtype
    const Tensor y = flash_tpa_decode(query, layer_cache, step.device_lengths).view({B, H * dh});
    Tensor h = empty({B, d}, dtype, model.device());
    device.decode_linear(y, w.attn_proj, x, std::nullopt, h);  // h = x + c_proj(y)
    Tensor gated = empty({B, c.mlp_hidden()}, dtype, model.device());
    device.decode_swiglu(h, w.mlp_gate, w.mlp_up, c.norm_eps, gated);  // silu(c_fc1 ĥ) ⊙ c_fc2 ĥ
    x = empty({B, d}, dtype, model.device());
    device.decode_linear(gated, w.mlp_proj, h, std::nullopt, x);  // x = h + c_proj(gated)
  }
  Tensor logits = empty({B, c.vocab_size}, dtype, model.device());
  device.decode_linear(x, weights.head, Tensor(), c.norm_eps, logits);  // rmsnorm(x) · wteᵀ
  return logits;
}

}  // namespace t6
