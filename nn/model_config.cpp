#include "nn/model_config.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/did_you_mean.h"
#include "core/error.h"

namespace t6 {

const std::vector<std::string>& ModelConfig::keys() {
  static const std::vector<std::string> k = {"vocab_size", "n_layer",   "n_embd",    "n_head",    "head_dim",
                                             "q_rank",     "rank",      "block_size", "attention", "n_kv_head",
                                             "norm_eps",   "init_seed"};
  return k;
}

const std::vector<std::string>& ModelConfig::attention_kinds() {
  static const std::vector<std::string> k = {"tpa", "tpa_kvonly", "mha", "gqa", "mqa"};
  return k;
}

namespace {

template <class T>
void read(const nlohmann::json& j, const char* key, T& out, const std::string& where) {
  if (!j.contains(key)) return;
  const nlohmann::json& v = j.at(key);
  if constexpr (std::is_same_v<T, std::string>) {
    T6_CHECK(v.is_string(), where, ": key \"", key, "\" must be a string, got ", v.dump());
    out = v.get<std::string>();
  } else if constexpr (std::is_floating_point_v<T>) {
    T6_CHECK(v.is_number(), where, ": key \"", key, "\" must be a number, got ", v.dump());
    out = v.get<double>();
  } else {
    T6_CHECK(v.is_number_integer(), where, ": key \"", key, "\" must be an integer, got ", v.dump());
    T6_CHECK(!std::is_unsigned_v<T> || v.get<int64_t>() >= 0, where, ": key \"", key, "\" must be ≥ 0, got ",
             v.dump());
    out = v.get<T>();
  }
}

}  // namespace

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& where) {
  T6_CHECK(j.is_object(), where, ": the model config must be a JSON object, got ", j.dump());
  for (const auto& [key, value] : j.items()) {
    T6_CHECK(std::find(keys().begin(), keys().end(), key) != keys().end(), where, ": unknown key \"", key, "\"",
             did_you_mean(key, keys()), "; allowed keys: ", join_quoted(keys()));
  }
  ModelConfig c;
  read(j, "vocab_size", c.vocab_size, where);
  read(j, "n_layer", c.n_layer, where);
  read(j, "n_embd", c.n_embd, where);
  read(j, "n_head", c.n_head, where);
  read(j, "head_dim", c.head_dim, where);
  read(j, "q_rank", c.q_rank, where);
  read(j, "rank", c.rank, where);
  read(j, "block_size", c.block_size, where);
  read(j, "attention", c.attention, where);
  read(j, "n_kv_head", c.n_kv_head, where);
  read(j, "norm_eps", c.norm_eps, where);
  read(j, "init_seed", c.init_seed, where);
  c.validate(where);
  return c;
}

nlohmann::json ModelConfig::to_json() const {
  return {{"vocab_size", vocab_size}, {"n_layer", n_layer},       {"n_embd", n_embd},
          {"n_head", n_head},         {"head_dim", head_dim},     {"q_rank", q_rank},
          {"rank", rank},             {"block_size", block_size}, {"attention", attention},
          {"n_kv_head", n_kv_head},   {"norm_eps", norm_eps},     {"init_seed", init_seed}};
}

void ModelConfig::validate(const std::string& where) const {
  auto positive = [&](const char* key, int64_t v) {
    T6_CHECK(v >= 1, where, ": \"", key, "\" must be ≥ 1, got ", v);
  };
  positive("vocab_size", vocab_size);
  positive("n_layer", n_layer);
  positive("n_embd", n_embd);
  positive("n_head", n_head);
  positive("head_dim", head_dim);
  positive("q_rank", q_rank);
  positive("rank", rank);
  positive("block_size", block_size);
  T6_CHECK(vocab_size <= 65536, where, ": \"vocab_size\" must be ≤ 65536 (token shards store uint16 ids), got ",
           vocab_size);
  T6_CHECK(head_dim % 2 == 0, where, ": \"head_dim\" must be even (RoPE rotates pairs of features), got ", head_dim);
  T6_CHECK(norm_eps > 0, where, ": \"norm_eps\" must be > 0, got ", norm_eps);
  T6_CHECK(std::find(attention_kinds().begin(), attention_kinds().end(), attention) != attention_kinds().end(), where,
           ": \"attention\" must be one of ", join_quoted(attention_kinds()), ", got \"", attention, "\"",
           did_you_mean(attention, attention_kinds()));
  if (attention == "gqa") {
    T6_CHECK(n_kv_head >= 1 && n_head % n_kv_head == 0, where,
             ": \"n_kv_head\" must be ≥ 1 and divide \"n_head\" (", n_head, ") for attention \"gqa\", got ", n_kv_head);
  } else {
    T6_CHECK(n_kv_head == 0, where, ": \"n_kv_head\" is only used by attention \"gqa\"; remove it or set it to 0 for \"",
             attention, "\" (got ", n_kv_head, ")");
  }
}

int64_t ModelConfig::kv_heads() const {
  if (attention == "gqa") return n_kv_head;
  if (attention == "mqa") return 1;
  return n_head;
}

int64_t ModelConfig::kv_cache_numbers_per_token_per_layer() const {
  if (factorized_kv()) return 2 * rank * (n_head + head_dim);
  return 2 * kv_heads() * head_dim;
}

}  // namespace t6
