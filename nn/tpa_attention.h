// Tensor Product Attention (paper Section 3; spec "Tensor Product Attention, per token t").
//
// Instead of projecting x to full query/key/value heads, TPA projects it to small factors and forms
// each head as a sum of R outer products (a rank-R tensor product):
//     q_t = (1/RQ) · A_q B_q,   A_q = (W_A_q x_t) viewed [H, RQ],  B_q = (W_B_q x_t) viewed [RQ, dh]
//     k_t = (1/R)  · A_k B_k,   v_t = (1/R) · A_v B_v               (R = rank for keys and values)
// RoPE rotates the B factors of queries and keys (which equals rotating q and k: Theorem 3.1), and the
// heads then go through ordinary causal attention. At inference only the factors need caching:
// 2R(H + dh) numbers per token and layer instead of 2·H·dh.
//
// "tpa_kvonly" keeps a plain query projection c_q (RoPE on each query head) and factorizes keys and
// values only.
#pragma once
#include "nn/attention.h"
#include "nn/linear.h"
#include "nn/model_config.h"

namespace t6 {

// The heads come from their factors, A (B,T,H,R) and B (B,T,R,dh) → heads (1/R) Σ_r A[…,h,r] B[…,r,:],
// (B,T,H,dh): inside the fused attention op (tpa_flash_attention, autograd/ops.h) where the backend
// prefers fused attention, else through tpa_product before the composite attention.

// The six factor projections, named as in the reference state dict: "c_qkv.W_A_q.weight", ….
class TPAFactorProjections : public Module {
 public:
  TPAFactorProjections(const ModelConfig& c, const ParameterInit& init);
  Linear* W_A_q = nullptr;  // (H·RQ, d)   absent for tpa_kvonly
  Linear& W_A_k;            // (H·R, d)
  Linear& W_A_v;            // (H·R, d)
  Linear* W_B_q = nullptr;  // (RQ·dh, d)  absent for tpa_kvonly
  Linear& W_B_k;            // (R·dh, d)
  Linear& W_B_v;            // (R·dh, d)

 private:
  Linear* add(bool present, const char* name, int64_t in, int64_t out, double bound, const ParameterInit& init);
};

class TPAAttention : public Attention {
 public:
  // The query is factorized for tpa and a plain projection for tpa_kvonly (config.factorized_query()).
  TPAAttention(const ModelConfig& c, const ParameterInit& init);
  Tensor forward(const Tensor& x, const Tensor& positions) const override;
  Tensor prefill(const Tensor& x, const Tensor& positions, LayerKVCache& cache) const override;
  // Attends in factor space (flash_tpa_decode), never forming K or V.
  Tensor decode(const Tensor& x, const DecodeSlots& step, LayerKVCache& cache) const override;

  // The per-token factors of x (B,T,d): A (B,T,H,R) and B (B,T,R,dh), with B_k already rotated.
  struct KVFactors {
    Tensor a_k, b_k, a_v, b_v;
  };
  KVFactors key_value_factors(const Tensor& x, const Tensor& positions) const;
  // The query factors of x (B,T,d): A_q (B,T,H,RQ) and rotated B_q (B,T,RQ,dh) for "tpa"; for
  // "tpa_kvonly" a_q is undefined and b_q holds the rotated heads of c_q (B,T,H,dh).
  struct QueryFactors {
    Tensor a_q, b_q;
  };
  QueryFactors query_factors(const Tensor& x, const Tensor& positions) const;

  const ModelConfig config;
  Linear* c_q = nullptr;  // (H·dh, d), tpa_kvonly only
  TPAFactorProjections& c_qkv;
  Linear& c_proj;  // (d, H·dh)

 private:
  // The query heads (B,T,H,dh), rotated: from factors for "tpa", from c_q for "tpa_kvonly".
  Tensor heads_of(const QueryFactors& f) const;
  // c_proj of causal attention of the heads the query and key/value factors form.
  Tensor attend(const QueryFactors& q, const KVFactors& f) const;
};

}  // namespace t6
