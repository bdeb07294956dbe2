#include "train/train_config.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>

#include "core/did_you_mean.h"
#include "core/error.h"

namespace t6 {

namespace {

// Reads one section's keys into typed fields, rejecting unknown keys and wrong types by name.
class SectionReader {
 public:
  SectionReader(const nlohmann::json& j, std::string where, std::vector<std::string> keys)
      : j_(j), where_(std::move(where)), keys_(std::move(keys)) {
    T6_CHECK(j_.is_object(), where_, " must be a JSON object, got ", j_.dump());
    for (const auto& [key, value] : j_.items()) {
      T6_CHECK(std::find(keys_.begin(), keys_.end(), key) != keys_.end(), where_, ": unknown key \"", key, "\"",
               did_you_mean(key, keys_), "; allowed keys: ", join_quoted(keys_));
    }
  }
  void get(const char* key, std::string& out) const {
    if (!j_.contains(key)) return;
    T6_CHECK(j_[key].is_string(), where_, ".", key, " must be a string, got ", j_[key].dump());
    out = j_[key].get<std::string>();
  }
  void get(const char* key, bool& out) const {
    if (!j_.contains(key)) return;
    T6_CHECK(j_[key].is_boolean(), where_, ".", key, " must be true or false, got ", j_[key].dump());
    out = j_[key].get<bool>();
  }
  void get(const char* key, double& out) const {
    if (!j_.contains(key)) return;
    T6_CHECK(j_[key].is_number(), where_, ".", key, " must be a number, got ", j_[key].dump());
    out = j_[key].get<double>();
  }
  void get(const char* key, int64_t& out) const {
    if (!j_.contains(key)) return;
    const nlohmann::json& v = j_[key];
    const bool too_big = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX);
    T6_CHECK(v.is_number_integer() && !too_big, where_, ".", key, " must be an integer (below 2^63), got ", v.dump());
    out = v.get<int64_t>();
  }
  void get(const char* key, uint64_t& out) const {
    if (!j_.contains(key)) return;
    const nlohmann::json& v = j_[key];
    T6_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0), where_, ".", key,
             " must be a non-negative integer, got ", v.dump());
    out = v.get<uint64_t>();
  }

 private:
  const nlohmann::json& j_;
  std::string where_;
  std::vector<std::string> keys_;
};

void one_of(const std::string& where, const char* key, const std::string& value, const std::vector<std::string>& allowed) {
  T6_CHECK(std::find(allowed.begin(), allowed.end(), value) != allowed.end(), where, ".", key, " must be one of ",
           join_quoted(allowed), ", got \"", value, "\"", did_you_mean(value, allowed));
}

}  // namespace

TrainConfig TrainConfig::from_json(const nlohmann::json& j, const std::string& where) {
  SectionReader top(j, where, {"model", "data", "train", "optim"});
  TrainConfig c;
  if (j.contains("model")) c.model = ModelConfig::from_json(j["model"], where + ": model");
  if (j.contains("data")) {
    SectionReader s(j["data"], where + ": data", {"train", "val", "tokenizer", "shuffle"});
    s.get("train", c.data.train);
    s.get("val", c.data.val);
    s.get("tokenizer", c.data.tokenizer);
    s.get("shuffle", c.data.shuffle);
  }
  if (j.contains("train")) {
    SectionReader s(j["train"], where + ": train",
                    {"batch_size", "seq_len", "grad_accum", "steps", "eval_every", "eval_batches", "save_every",
                     "keep_checkpoints", "sample_every", "seed", "init_from", "out_dir", "device", "dtype", "threads"});
    TrainSection& t = c.train;
    s.get("batch_size", t.batch_size);
    s.get("seq_len", t.seq_len);
    s.get("grad_accum", t.grad_accum);
    s.get("steps", t.steps);
    s.get("eval_every", t.eval_every);
    s.get("eval_batches", t.eval_batches);
    s.get("save_every", t.save_every);
    s.get("keep_checkpoints", t.keep_checkpoints);
    s.get("sample_every", t.sample_every);
    s.get("seed", t.seed);
    s.get("init_from", t.init_from);
    s.get("out_dir", t.out_dir);
    s.get("device", t.device);
    s.get("dtype", t.dtype);
    s.get("threads", t.threads);
  }
  if (j.contains("optim")) {
    SectionReader s(j["optim"], where + ": optim",
                    {"lr", "min_lr", "warmup_steps", "decay_steps", "schedule", "beta1", "beta2", "eps", "weight_decay",
                     "grad_clip"});
    OptimConfig& o = c.optim;
    s.get("lr", o.lr);
    s.get("min_lr", o.min_lr);
    s.get("warmup_steps", o.warmup_steps);
    s.get("decay_steps", o.decay_steps);
    s.get("schedule", o.schedule);
    s.get("beta1", o.beta1);
    s.get("beta2", o.beta2);
    s.get("eps", o.eps);
    s.get("weight_decay", o.weight_decay);
    s.get("grad_clip", o.grad_clip);
  }
  c.validate(where);
  return c;
}

void TrainConfig::validate(const std::string& where) const {
  model.validate(where + ": model");
  one_of(where + ": data", "tokenizer", data.tokenizer, {"byte", "gpt2"});
  T6_CHECK(data.tokenizer != "byte" || model.vocab_size >= 256, where,
           ": model.vocab_size must be ≥ 256 for the byte tokenizer, got ", model.vocab_size);
  T6_CHECK(data.tokenizer != "gpt2" || model.vocab_size >= 50257, where,
           ": model.vocab_size must be ≥ 50257 for the gpt2 tokenizer (the paper pads it to 50304), got ",
           model.vocab_size);
  const std::string t = where + ": train";
  auto at_least = [](const std::string& section, const char* key, int64_t value, int64_t low) {
    T6_CHECK(value >= low, section, ".", key, " must be ≥ ", low, ", got ", value);
  };
  at_least(t, "batch_size", train.batch_size, 1);
  at_least(t, "seq_len", train.seq_len, 1);
  T6_CHECK(train.seq_len <= model.block_size, t, ".seq_len (", train.seq_len, ") must be ≤ model.block_size (",
           model.block_size, ")");
  at_least(t, "grad_accum", train.grad_accum, 1);
  at_least(t, "steps", train.steps, 1);
  at_least(t, "eval_every", train.eval_every, 1);
  at_least(t, "eval_batches", train.eval_batches, 0);
  at_least(t, "save_every", train.save_every, 1);
  at_least(t, "keep_checkpoints", train.keep_checkpoints, 1);
  at_least(t, "sample_every", train.sample_every, 0);
  at_least(t, "threads", train.threads, 0);
  T6_CHECK(!train.out_dir.empty(), t, ".out_dir must not be empty");
  one_of(t, "device", train.device, {"cpu", "cuda"});
  one_of(t, "dtype", train.dtype, {"fp32", "tf32", "bf16"});
  T6_CHECK(train.dtype == "fp32" || train.device == "cuda", t, ".dtype \"", train.dtype,
           "\" needs train.device \"cuda\"; the CPU trains in fp32");
  const std::string o = where + ": optim";
  T6_CHECK(optim.lr > 0, o, ".lr must be > 0, got ", optim.lr);
  T6_CHECK(optim.min_lr >= 0 && optim.min_lr <= optim.lr, o, ".min_lr must lie in [0, lr], got ", optim.min_lr);
  at_least(o, "warmup_steps", optim.warmup_steps, 0);
  at_least(o, "decay_steps", optim.decay_steps, 1);
  one_of(o, "schedule", optim.schedule, {"cosine", "linear", "constant"});
  T6_CHECK(optim.schedule == "constant" || optim.decay_steps >= optim.warmup_steps, o, ".decay_steps (",
           optim.decay_steps, ") must be ≥ optim.warmup_steps (", optim.warmup_steps, "): the ", optim.schedule,
           " decay starts after the warm-up");
  T6_CHECK(optim.beta1 >= 0 && optim.beta1 < 1, o, ".beta1 must lie in [0, 1), got ", optim.beta1);
  T6_CHECK(optim.beta2 >= 0 && optim.beta2 < 1, o, ".beta2 must lie in [0, 1), got ", optim.beta2);
  T6_CHECK(optim.eps > 0, o, ".eps must be > 0, got ", optim.eps);
  T6_CHECK(optim.weight_decay >= 0, o, ".weight_decay must be ≥ 0, got ", optim.weight_decay);
  T6_CHECK(optim.grad_clip >= 0, o, ".grad_clip must be ≥ 0 (0 turns clipping off), got ", optim.grad_clip);
}

nlohmann::json TrainConfig::to_json() const {
  const TrainSection& t = train;
  const OptimConfig& o = optim;
  return {{"model", model.to_json()},
          {"data", {{"train", data.train}, {"val", data.val}, {"tokenizer", data.tokenizer}, {"shuffle", data.shuffle}}},
          {"train",
           {{"batch_size", t.batch_size}, {"seq_len", t.seq_len}, {"grad_accum", t.grad_accum}, {"steps", t.steps},
            {"eval_every", t.eval_every}, {"eval_batches", t.eval_batches}, {"save_every", t.save_every},
            {"keep_checkpoints", t.keep_checkpoints}, {"sample_every", t.sample_every}, {"seed", t.seed},
            {"init_from", t.init_from}, {"out_dir", t.out_dir}, {"device", t.device}, {"dtype", t.dtype},
            {"threads", t.threads}}},
          {"optim",
           {{"lr", o.lr}, {"min_lr", o.min_lr}, {"warmup_steps", o.warmup_steps}, {"decay_steps", o.decay_steps},
            {"schedule", o.schedule}, {"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps},
            {"weight_decay", o.weight_decay}, {"grad_clip", o.grad_clip}}}};
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  T6_CHECK(in.good(), path, ": cannot open the file (does it exist and is it readable?)");
  std::stringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(cat(path, ": not valid JSON: ", e.what()));
  }
}

TrainConfig TrainConfig::load(const std::string& path) { return from_json(read_json_file(path), path); }

ModelConfig read_model_config(const std::string& path) {
  const nlohmann::json j = read_json_file(path);
  if (j.is_object() && (j.contains("model") || j.contains("train") || j.contains("data") || j.contains("optim")))
    return TrainConfig::from_json(j, path).model;
  return ModelConfig::from_json(j, path);
}

void apply_override(nlohmann::json& config, const std::string& assignment) {
  const size_t eq = assignment.find('='), dot = assignment.find('.');
  T6_CHECK(eq != std::string::npos && dot != std::string::npos && dot < eq, "--set \"", assignment,
           "\": expected section.key=value, e.g. --set train.steps=100");
  const std::string section = assignment.substr(0, dot), key = assignment.substr(dot + 1, eq - dot - 1),
                    text = assignment.substr(eq + 1);
  nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = text;  // a bare word is a string
  try {
    (void)value.dump();
  } catch (const nlohmann::json::exception&) {
    throw Error(cat("--set \"", section, ".", key, "=...\": the value is not valid UTF-8"));
  }
  T6_CHECK(config.is_object(), "--set \"", assignment, "\": the config is not a JSON object");
  if (!config.contains(section)) config[section] = nlohmann::json::object();
  T6_CHECK(config[section].is_object(), "--set \"", assignment, "\": section \"", section,
           "\" of the config is not a JSON object");
  config[section][key] = value;  // unknown sections and keys are caught by TrainConfig::from_json
}

}  // namespace t6
