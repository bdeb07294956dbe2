// The shape of a T6 model (spec: symbols and parameters), read from and written to JSON.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/config_table.h"

namespace t6 {

// The attention variants of the spec: TPA, TPA with a plain query projection, and the paper's
// baselines (multi-head, grouped-query, multi-query attention).
enum class AttentionKind : uint8_t { TPA, TPAKVOnly, MHA, GQA, MQA };
const EnumNames<AttentionKind>& attention_kind_names();  // "tpa", "tpa_kvonly", "mha", "gqa", "mqa"

struct ModelConfig {
  // Defaults are the paper's small T6 (124.34M parameters).
  int64_t vocab_size = 50304;
  int64_t n_layer = 12;
  int64_t n_embd = 768;     // d
  int64_t n_head = 34;      // H
  int64_t head_dim = 64;    // dh
  int64_t q_rank = 6;       // RQ
  int64_t rank = 2;         // R, for keys and values
  int64_t block_size = 1024;  // longest sequence
  AttentionKind attention = AttentionKind::TPA;
  int64_t n_kv_head = 0;  // key/value heads of "gqa" (must divide n_head); 0 elsewhere
  double norm_eps = 1.1920928955078125e-07;  // float32 machine epsilon, 2^-23
  uint64_t init_seed = 1337;

  static const ConfigTable<ModelConfig>& table();  // every key, declared once (nn/model_config.cpp)

  // Reads the keys present in `j` over the defaults. Unknown keys, wrong JSON types and impossible
  // values throw t6::Error naming the key, the allowed values and `where` ("run.json: model").
  static ModelConfig from_json(const nlohmann::json& j, const std::string& where = "model");
  nlohmann::json to_json() const;
  void validate(const std::string& where = "model") const;
  const char* attention_name() const { return attention_kind_names().name(attention); }

  int64_t mlp_hidden() const { return 8 * n_embd / 3; }  // F = floor(8d/3)
  // Key/value heads actually stored: H for tpa/tpa_kvonly/mha, n_kv_head for gqa, 1 for mqa.
  int64_t kv_heads() const;
  bool factorized_kv() const { return attention == AttentionKind::TPA || attention == AttentionKind::TPAKVOnly; }
  bool factorized_query() const { return attention == AttentionKind::TPA; }  // tpa_kvonly keeps a plain c_q
  // Numbers cached per token per layer: 2R(H + dh) for the factorized variants, 2·kv_heads·dh else.
  int64_t kv_cache_numbers_per_token_per_layer() const;
};

}  // namespace t6
