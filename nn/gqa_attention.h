// The paper's baselines, "llama" style: multi-head ("mha"), grouped-query ("gqa", n_kv_head key/value
// heads each shared by n_head/n_kv_head query heads) and multi-query ("mqa", one key/value head).
// Plain projections c_q, c_k, c_v (Xavier uniform), RoPE on every query and key head, c_proj (zeros).
#pragma once
#include "nn/attention.h"
#include "nn/linear.h"
#include "nn/model_config.h"

namespace t6 {

class GQAAttention : public Attention {
 public:
  GQAAttention(const ModelConfig& c, const ParameterInit& init);
  Tensor forward(const Tensor& x, const Tensor& positions) const override;
  Tensor prefill(const Tensor& x, const Tensor& positions, LayerKVCache& cache) const override;
  Tensor decode(const Tensor& x, const DecodeSlots& step, LayerKVCache& cache) const override;

  // Rotated heads of x (B,T,d): queries (B,T,H,dh); keys and values (B,T,kv_heads,dh).
  Tensor queries(const Tensor& x, const Tensor& positions) const;
  Tensor keys(const Tensor& x, const Tensor& positions) const;
  Tensor values(const Tensor& x) const;

  const ModelConfig config;
  Linear& c_q;     // (H·dh, d)
  Linear& c_k;     // (kv_heads·dh, d)
  Linear& c_v;     // (kv_heads·dh, d)
  Linear& c_proj;  // (d, H·dh)

 private:
  // c_proj of causal attention of the queries (B,T,H,dh) over keys and values (B,T,kv_heads,dh).
  Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v) const;
};

}  // namespace t6
