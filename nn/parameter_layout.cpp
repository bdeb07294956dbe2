#include "nn/parameter_layout.h"

namespace t6 {

std::vector<ParameterSpec> parameter_layout(const ModelConfig& c) {
  const int64_t d = c.n_embd, H = c.n_head, dh = c.head_dim, RQ = c.q_rank, R = c.rank, F = c.mlp_hidden();
  std::vector<ParameterSpec> out = {{"transformer.wte.weight", {c.vocab_size, d}}};
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = "transformer.h." + std::to_string(i) + ".";
    if (c.attention == "tpa_kvonly") out.push_back({p + "attn.c_q.weight", {H * dh, d}});
    if (c.factorized_kv()) {
      if (c.attention == "tpa") out.push_back({p + "attn.c_qkv.W_A_q.weight", {H * RQ, d}});
      out.push_back({p + "attn.c_qkv.W_A_k.weight", {H * R, d}});
      out.push_back({p + "attn.c_qkv.W_A_v.weight", {H * R, d}});
      if (c.attention == "tpa") out.push_back({p + "attn.c_qkv.W_B_q.weight", {RQ * dh, d}});
      out.push_back({p + "attn.c_qkv.W_B_k.weight", {R * dh, d}});
      out.push_back({p + "attn.c_qkv.W_B_v.weight", {R * dh, d}});
    } else {
      out.push_back({p + "attn.c_q.weight", {H * dh, d}});
      out.push_back({p + "attn.c_k.weight", {c.kv_heads() * dh, d}});
      out.push_back({p + "attn.c_v.weight", {c.kv_heads() * dh, d}});
    }
    out.push_back({p + "attn.c_proj.weight", {d, H * dh}});
    out.push_back({p + "mlp.c_fc1.weight", {F, d}});
    out.push_back({p + "mlp.c_fc2.weight", {F, d}});
    out.push_back({p + "mlp.c_proj.weight", {d, F}});
  }
  return out;
}

int64_t parameter_total(const ModelConfig& c) {
  int64_t n = 0;
  for (const ParameterSpec& p : parameter_layout(c)) n += numel_of(p.shape);
  return n;
}

}  // namespace t6
