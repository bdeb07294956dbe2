#include "nn/model_config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace t6 {

const EnumNames<AttentionKind>& attention_kind_names() {
  static const EnumNames<AttentionKind> names = {{AttentionKind::TPA, "tpa"},
                                                 {AttentionKind::TPAKVOnly, "tpa_kvonly"},
                                                 {AttentionKind::MHA, "mha"},
                                                 {AttentionKind::GQA, "gqa"},
                                                 {AttentionKind::MQA, "mqa"}};
  return names;
}

const ConfigTable<ModelConfig>& ModelConfig::table() {
  using C = ModelConfig;
  static const ConfigTable<C> t =
      ConfigTable<C>()
          .integer("vocab_size", &C::vocab_size, IntegerRange::within(1, 65536, "token shards store uint16 ids"),
                   "token ids are below it; the paper pads GPT-2's 50257 to 50304")
          .integer("n_layer", &C::n_layer, IntegerRange::at_least(1), "transformer blocks (L)")
          .integer("n_embd", &C::n_embd, IntegerRange::at_least(1), "model width (d)")
          .integer("n_head", &C::n_head, IntegerRange::at_least(1), "query heads (H)")
          .integer("head_dim", &C::head_dim, IntegerRange::at_least(1), "features per head (dh); even, for RoPE")
          .integer("q_rank", &C::q_rank, IntegerRange::at_least(1), "rank of the query factors (RQ)")
          .integer("rank", &C::rank, IntegerRange::at_least(1), "rank of the key and value factors (R)")
          .integer("block_size", &C::block_size, IntegerRange::at_least(1), "longest sequence the model sees")
          .choice("attention", &C::attention, attention_kind_names(),
                  "the variant: TPA, TPA with a plain query, or a baseline")
          .integer("n_kv_head", &C::n_kv_head, IntegerRange::at_least(0),
                   "key/value heads of gqa (must divide n_head); 0 for every other variant")
          .number("norm_eps", &C::norm_eps, NumberRange::above(0), "RMSNorm epsilon (default: float32 machine epsilon)")
          .seed("init_seed", &C::init_seed, "seed of the weight initialisation");
  return t;
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& where) {
  ModelConfig c;
  table().read(j, c, where);
  c.validate(where);
  return c;
}

nlohmann::json ModelConfig::to_json() const { return table().write(*this); }

void ModelConfig::validate(const std::string& where) const {
  T6_CHECK(head_dim % 2 == 0, where, ".head_dim must be even (RoPE rotates pairs of features), got ", head_dim);
  if (attention == AttentionKind::GQA) {
    T6_CHECK(n_kv_head >= 1 && n_head % n_kv_head == 0, where, ".n_kv_head must be ≥ 1 and divide n_head (", n_head,
             ") for attention \"gqa\", got ", n_kv_head);
  } else {
    T6_CHECK(n_kv_head == 0, where, ".n_kv_head is only used by attention \"gqa\"; remove it or set it to 0 for \"",
             attention_name(), "\" (got ", n_kv_head, ")");
  }
}

int64_t ModelConfig::kv_heads() const {
  if (attention == AttentionKind::GQA) return n_kv_head;
  if (attention == AttentionKind::MQA) return 1;
  return n_head;
}

int64_t ModelConfig::kv_cache_numbers_per_token_per_layer() const {
  if (factorized_kv()) return 2 * rank * (n_head + head_dim);
  return 2 * kv_heads() * head_dim;
}

}  // namespace t6
