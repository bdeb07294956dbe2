// The training config (train/train_config.h): defaults for every key, the JSON round trip, and every
// error path: unknown sections and keys (with "did you mean"), wrong types, impossible values, --set
// overrides good and bad, and unreadable files.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "data_test_support.h"
#include "train/train_config.h"

using t6::testing::error_message;
using t6::testing::TempDir;

namespace {

std::string config_error(const nlohmann::json& j) {
  return error_message([&] { t6::TrainConfig::from_json(j, "run.json"); });
}

t6::TrainConfig load(const std::string& path) { return t6::TrainConfig::from_json(t6::read_json_file(path), path); }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A config that passes validation with non-default values everywhere.
nlohmann::json custom_config() {
  return nlohmann::json::parse(R"({
    "model": {"vocab_size": 300, "n_layer": 2, "n_embd": 32, "n_head": 4, "head_dim": 8, "q_rank": 3, "rank": 1,
              "block_size": 64, "init_seed": 5},
    "data": {"train": "d/tr_*.bin", "val": "", "tokenizer": "byte", "shuffle": false},
    "train": {"batch_size": 3, "seq_len": 32, "grad_accum": 2, "steps": 77, "eval_every": 7, "eval_batches": 0,
              "save_every": 11, "keep_checkpoints": 1, "sample_every": 0, "seed": 18446744073709551615,
              "init_from": "m.safetensors", "out_dir": "runs/x", "device": "cpu", "dtype": "fp32", "threads": 2,
              "zero_stage": 1, "bucket_mb": 0.5},
    "optim": {"lr": 0.003, "min_lr": 0.0, "warmup_steps": 0, "decay_steps": 77, "schedule": "linear", "beta1": 0.8,
              "beta2": 0.99, "eps": 1e-6, "weight_decay": 0.0, "grad_clip": 0.0}})");
}

}  // namespace

TEST_CASE("train config: every key has a default, and the optimizer defaults are the paper's recipe") {
  const t6::TrainConfig empty = t6::TrainConfig::from_json(nlohmann::json::object(), "run.json");
  CHECK(empty.to_json() == t6::TrainConfig{}.to_json());
  const t6::TrainConfig sections = t6::TrainConfig::from_json({{"model", nlohmann::json::object()},
                                                               {"data", nlohmann::json::object()},
                                                               {"train", nlohmann::json::object()},
                                                               {"optim", nlohmann::json::object()}},
                                                              "run.json");
  CHECK(sections.to_json() == empty.to_json());
  CHECK(empty.optim.beta1 == 0.9);
  CHECK(empty.optim.beta2 == 0.95);
  CHECK(empty.optim.eps == 1e-8);
  CHECK(empty.optim.weight_decay == 0.1);
  CHECK(empty.optim.grad_clip == 1.0);
  CHECK(empty.optim.schedule == t6::Schedule::Cosine);
  CHECK(empty.train.grad_accum == 1);
  CHECK(empty.train.eval_batches == 20);
  CHECK(empty.data.tokenizer == t6::TokenizerKind::Byte);
  // to_json names every key of every section.
  const nlohmann::json j = empty.to_json();
  CHECK(j["data"].size() == 4);
  CHECK(j["train"].size() == 17);
  CHECK(j["optim"].size() == 10);
  CHECK(j["model"].size() == t6::ModelConfig::table().keys().size());
}

TEST_CASE("train config: from_json and to_json round trip every value") {
  const nlohmann::json j = custom_config();
  const t6::TrainConfig c = t6::TrainConfig::from_json(j, "run.json");
  const nlohmann::json back = c.to_json();
  for (const char* section : {"data", "train", "optim"}) CHECK(back[section] == j[section]);
  for (const auto& [key, value] : j["model"].items()) CHECK(back["model"][key] == value);
  CHECK(c.train.seed == 18446744073709551615ull);
  CHECK(t6::TrainConfig::from_json(back, "again").to_json() == back);
}

TEST_CASE("train config: unknown sections and keys are errors with a did-you-mean hint and the allowed keys") {
  CHECK(contains(config_error({{"trian", nlohmann::json::object()}}),
                 "run.json: unknown key \"trian\" (did you mean \"train\"?); allowed keys: \"model\", \"data\", "
                 "\"train\", \"optim\""));
  const std::string far = config_error({{"optimizer", nlohmann::json::object()}});
  CHECK(contains(far, "run.json: unknown key \"optimizer\"; allowed keys:"));
  CHECK(contains(config_error({{"train", {{"step", 5}}}}),
                 "run.json: train: unknown key \"step\" (did you mean \"steps\"?)"));
  CHECK(contains(config_error({{"data", {{"shufle", true}}}}),
                 "run.json: data: unknown key \"shufle\" (did you mean \"shuffle\"?)"));
  CHECK(contains(config_error({{"optim", {{"weight_decy", 0.1}}}}),
                 "run.json: optim: unknown key \"weight_decy\" (did you mean \"weight_decay\"?)"));
  CHECK(contains(config_error({{"model", {{"n_layers", 2}}}}), "unknown key \"n_layers\" (did you mean \"n_layer\"?)"));
  CHECK(contains(config_error({{"train", {{"learning_rate", 1}}}}), "allowed keys: \"batch_size\", \"seq_len\""));
}

TEST_CASE("train config: wrong JSON types name the key and the value") {
  using nlohmann::json;
  CHECK(config_error(json::array()) == "run.json must be a JSON object, got []");
  CHECK(config_error({{"train", json::array({1})}}) == "run.json: train must be a JSON object, got [1]");
  CHECK(config_error({{"train", {{"steps", "100"}}}}) ==
        "run.json: train.steps must be an integer (below 2^63), got \"100\"");
  CHECK(config_error({{"train", {{"steps", 1.5}}}}) ==
        "run.json: train.steps must be an integer (below 2^63), got 1.5");
  CHECK(config_error({{"train", {{"steps", 9223372036854775808ull}}}}) ==
        "run.json: train.steps must be an integer (below 2^63), got 9223372036854775808");
  CHECK(config_error({{"train", {{"seed", -1}}}}) == "run.json: train.seed must be a non-negative integer, got -1");
  CHECK(config_error({{"train", {{"seed", 1.0}}}}) == "run.json: train.seed must be a non-negative integer, got 1.0");
  CHECK(config_error({{"train", {{"out_dir", 3}}}}) == "run.json: train.out_dir must be a string, got 3");
  CHECK(config_error({{"data", {{"train", nullptr}}}}) == "run.json: data.train must be a string, got null");
  CHECK(config_error({{"data", {{"shuffle", "yes"}}}}) == "run.json: data.shuffle must be true or false, got \"yes\"");
  CHECK(config_error({{"data", {{"shuffle", 1}}}}) == "run.json: data.shuffle must be true or false, got 1");
  CHECK(config_error({{"optim", {{"lr", "high"}}}}) == "run.json: optim.lr must be a number, got \"high\"");
  CHECK(config_error({{"optim", {{"lr", true}}}}) == "run.json: optim.lr must be a number, got true");
  CHECK(contains(config_error({{"model", {{"n_layer", "2"}}}}), "model.n_layer must be an integer (below 2^63), got \"2\""));
  CHECK(contains(config_error({{"model", 5}}), "must be a JSON object, got 5"));
}

TEST_CASE("train config: impossible values are errors naming the key, the bound and the value") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      // (config, the whole message)
      {R"({"train": {"batch_size": 0}})", "run.json: train.batch_size must be ≥ 1, got 0"},
      {R"({"train": {"seq_len": 0}})", "run.json: train.seq_len must be ≥ 1, got 0"},
      {R"({"train": {"seq_len": 2048}})", "run.json: train.seq_len (2048) must be ≤ model.block_size (1024)"},
      {R"({"train": {"grad_accum": 0}})", "run.json: train.grad_accum must be ≥ 1, got 0"},
      {R"({"train": {"steps": 0}})", "run.json: train.steps must be ≥ 1, got 0"},
      {R"({"train": {"eval_every": 0}})", "run.json: train.eval_every must be ≥ 1, got 0"},
      {R"({"train": {"eval_batches": -1}})", "run.json: train.eval_batches must be ≥ 0, got -1"},
      {R"({"train": {"save_every": 0}})", "run.json: train.save_every must be ≥ 1, got 0"},
      {R"({"train": {"keep_checkpoints": 0}})", "run.json: train.keep_checkpoints must be ≥ 1, got 0"},
      {R"({"train": {"sample_every": -1}})", "run.json: train.sample_every must be ≥ 0, got -1"},
      {R"({"train": {"threads": -2}})", "run.json: train.threads must be ≥ 0, got -2"},
      {R"({"train": {"zero_stage": 2}})", "run.json: train.zero_stage must be ≤ 1, got 2"},
      {R"({"train": {"bucket_mb": -1}})", "run.json: train.bucket_mb must be ≥ 0, got -1"},
      {R"({"train": {"out_dir": ""}})", "run.json: train.out_dir must not be empty"},
      {R"({"train": {"device": "gpu"}})",
       "run.json: train.device must be one of \"cpu\", \"cuda\", got \"gpu\" (did you mean \"cpu\"?)"},
      {R"({"train": {"dtype": "fp61"}})",
       "run.json: train.dtype must be one of \"fp32\", \"tf32\", \"bf16\", got \"fp61\" (did you mean \"fp32\"?)"},
      {R"({"train": {"dtype": "tf32"}})",
       "run.json: train.dtype \"tf32\" needs train.device \"cuda\"; the CPU trains in fp32"},
      {R"({"data": {"tokenizer": "bpe"}})",
       "run.json: data.tokenizer must be one of \"byte\", \"gpt2\", got \"bpe\" (did you mean \"byte\"?)"},
      {R"({"model": {"vocab_size": 100}})", "run.json: model.vocab_size must be ≥ 256 for the byte tokenizer, got 100"},
      {R"({"model": {"vocab_size": 256}, "data": {"tokenizer": "gpt2"}})",
       "run.json: model.vocab_size must be ≥ 50257 for the gpt2 tokenizer (the paper pads it to 50304), got 256"},
      {R"({"optim": {"lr": 0}})", "run.json: optim.lr must be > 0, got 0"},
      {R"({"optim": {"lr": -1e-3}})", "run.json: optim.lr must be > 0, got -0.001"},
      {R"({"optim": {"min_lr": 0.01}})", "run.json: optim.min_lr must lie in [0, lr], got 0.01"},
      {R"({"optim": {"min_lr": -1.0}})", "run.json: optim.min_lr must be ≥ 0, got -1"},
      {R"({"optim": {"warmup_steps": -1}})", "run.json: optim.warmup_steps must be ≥ 0, got -1"},
      {R"({"optim": {"decay_steps": 0, "warmup_steps": 0}})", "run.json: optim.decay_steps must be ≥ 1, got 0"},
      {R"({"optim": {"decay_steps": 50}})",
       "run.json: optim.decay_steps (50) must be ≥ optim.warmup_steps (100): the cosine decay starts after the "
       "warm-up"},
      {R"({"optim": {"schedule": "cosin"}})",
       "run.json: optim.schedule must be one of \"cosine\", \"linear\", \"constant\", got \"cosin\" (did you mean "
       "\"cosine\"?)"},
      {R"({"optim": {"beta1": 1.0}})", "run.json: optim.beta1 must lie in [0, 1), got 1"},
      {R"({"optim": {"beta2": -0.5}})", "run.json: optim.beta2 must lie in [0, 1), got -0.5"},
      {R"({"optim": {"eps": 0.0}})", "run.json: optim.eps must be > 0, got 0"},
      {R"({"optim": {"weight_decay": -0.1}})", "run.json: optim.weight_decay must be ≥ 0, got -0.1"},
      {R"({"optim": {"grad_clip": -1}})", "run.json: optim.grad_clip must be ≥ 0 (0 turns clipping off), got -1"},
  };
  for (const auto& [text, expected] : cases) {
    CAPTURE(text);
    CHECK(config_error(nlohmann::json::parse(text)) == expected);
  }
  CHECK(contains(config_error({{"model", {{"n_layer", 0}}}}), "model.n_layer must be ≥ 1, got 0"));
  // A constant schedule has no decay, so decay_steps may be below warmup_steps.
  CHECK(t6::TrainConfig::from_json({{"optim", {{"schedule", "constant"}, {"decay_steps", 5}}}}, "run.json")
            .optim.decay_steps == 5);
}

TEST_CASE("train config: --set overrides read JSON values, or bare words as strings") {
  nlohmann::json j = {{"train", {{"steps", 10}}}};
  t6::apply_override(j, "train.steps=100");
  t6::apply_override(j, "optim.lr=3e-4");
  t6::apply_override(j, "data.shuffle=false");
  t6::apply_override(j, "train.out_dir=runs/x y");
  t6::apply_override(j, "train.device=\"cpu\"");
  t6::apply_override(j, "data.train=data/train_*.bin");
  t6::apply_override(j, "model.n_layer=2");
  CHECK(j["train"]["steps"] == 100);
  CHECK(j["optim"]["lr"] == 3e-4);
  CHECK(j["data"]["shuffle"] == false);
  CHECK(j["train"]["out_dir"] == "runs/x y");
  CHECK(j["train"]["device"] == "cpu");
  CHECK(j["data"]["train"] == "data/train_*.bin");
  const t6::TrainConfig c = t6::TrainConfig::from_json(j, "run.json");
  CHECK(c.train.steps == 100);
  CHECK(c.optim.lr == 3e-4);
  CHECK(c.data.shuffle == false);
  CHECK(c.model.n_layer == 2);
  CHECK(c.train.out_dir == "runs/x y");
}

TEST_CASE("train config: bad --set overrides are errors") {
  auto override_error = [](nlohmann::json j, const std::string& assignment) {
    return error_message([&] {
      t6::apply_override(j, assignment);
      t6::TrainConfig::from_json(j, "run.json");
    });
  };
  const nlohmann::json base = nlohmann::json::object();
  for (const char* malformed : {"train.steps", "steps=5", "train=5", "a=b.c", ""}) {
    CAPTURE(malformed);
    CHECK(override_error(base, malformed) ==
          t6::cat("--set \"", malformed, "\": expected section.key=value, e.g. --set train.steps=100"));
  }
  CHECK(contains(override_error(base, "trian.steps=5"), "run.json: unknown key \"trian\" (did you mean \"train\"?)"));
  CHECK(contains(override_error(base, ".steps=5"), "run.json: unknown key \"\""));
  CHECK(contains(override_error(base, "train.stpes=5"),
                 "run.json: train: unknown key \"stpes\" (did you mean \"steps\"?)"));
  CHECK(override_error(base, "train.steps=abc") ==
        "run.json: train.steps must be an integer (below 2^63), got \"abc\"");
  CHECK(override_error(base, "train.steps=-5") == "run.json: train.steps must be ≥ 1, got -5");
  CHECK(override_error(base, "optim.lr=1e999") == "run.json: optim.lr must be a number, got \"1e999\"");
  CHECK(override_error(base, "data.shuffle=maybe") == "run.json: data.shuffle must be true or false, got \"maybe\"");
  CHECK(override_error({{"train", 5}}, "train.steps=5") ==
        "--set \"train.steps=5\": section \"train\" of the config is not a JSON object");
  CHECK(override_error(nlohmann::json::array(), "train.steps=5") ==
        "--set \"train.steps=5\": the config is not a JSON object");
  CHECK(override_error(base, "train.out_dir=\xff\xfe") == "--set \"train.out_dir=...\": the value is not valid UTF-8");
}

TEST_CASE("train config files: read, parse errors with line numbers, missing files, bare model configs") {
  TempDir dir;
  const std::string good = dir.write("good.json", custom_config().dump(2));
  CHECK(load(good).train.steps == 77);
  CHECK(t6::read_model_config(good).n_layer == 2);
  const std::string bare = dir.write("model.json", R"({"n_layer": 3, "vocab_size": 256})");
  CHECK(t6::read_model_config(bare).n_layer == 3);
  const std::string bad_model = dir.write("bad_model.json", R"({"n_layr": 3})");
  CHECK(contains(error_message([&] { t6::read_model_config(bad_model); }),
                 "unknown key \"n_layr\" (did you mean \"n_layer\"?)"));

  const std::string syntax = dir.write("syntax.json", "{\n  \"train\": {\"steps\": 5,}\n}\n");
  const std::string message = error_message([&] { load(syntax); });
  CHECK(contains(message, syntax + ": not valid JSON:"));
  CHECK(contains(message, "line 2"));
  const std::string missing = dir / "absent.json";
  CHECK(error_message([&] { load(missing); }) ==
        missing + ": cannot open the file (does it exist and is it readable?)");
  const std::string invalid = dir.write("invalid.json", R"({"train": {"steps": 0}})");
  CHECK(error_message([&] { load(invalid); }) == invalid + ": train.steps must be ≥ 1, got 0");
}
