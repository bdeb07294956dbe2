#include "train/train_config.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/did_you_mean.h"
#include "core/cpu/threads.h"
#include "core/error.h"

namespace t6 {

const EnumNames<Schedule>& schedule_names() {
  static const EnumNames<Schedule> names = {
      {Schedule::Cosine, "cosine"}, {Schedule::Linear, "linear"}, {Schedule::Constant, "constant"}};
  return names;
}

const ConfigTable<DataConfig>& DataConfig::table() {
  using C = DataConfig;
  static const ConfigTable<C> t =
      ConfigTable<C>()
          .text("train", &C::train, "glob of the training token shards (t6 prepare writes them)")
          .text("val", &C::val, "glob of the validation shards; \"\" for no validation", OnResume::MayChange)
          .choice("tokenizer", &C::tokenizer, tokenizer_kind_names(), "what the token ids mean (for samples)")
          .flag("shuffle", &C::shuffle, "visit the training windows in a seeded random order");
  return t;
}

const ConfigTable<TrainSection>& TrainSection::table() {
  using C = TrainSection;
  const auto at_least = IntegerRange::at_least;
  static const ConfigTable<C> t =
      ConfigTable<C>()
          .integer("batch_size", &C::batch_size, at_least(1, ""), "sequences per micro-batch (B)")
          .integer("seq_len", &C::seq_len, at_least(1, ""), "tokens per sequence (T)")
          .integer("grad_accum", &C::grad_accum, at_least(1, ""), "micro-batches per optimizer step")
          .integer("steps", &C::steps, at_least(1, ""), "optimizer steps of the whole run", OnResume::MayChange)
          .integer("eval_every", &C::eval_every, at_least(1, ""), "steps between validation runs", OnResume::MayChange)
          .integer("eval_batches", &C::eval_batches, at_least(0, ""),
                   "validation batches per evaluation; 0: every complete window", OnResume::MayChange)
          .integer("save_every", &C::save_every, at_least(1, ""), "steps between checkpoints", OnResume::MayChange)
          .integer("keep_checkpoints", &C::keep_checkpoints, at_least(1, ""), "newest checkpoints kept",
                   OnResume::MayChange)
          .integer("sample_every", &C::sample_every, at_least(0, ""), "steps between text samples; 0: none",
                   OnResume::MayChange)
          .seed("seed", &C::seed, "seed of the data order and the samples")
          .text("init_from", &C::init_from, "a safetensors model to start from (read only when not resuming)",
                OnResume::MayChange)
          .text("out_dir", &C::out_dir, "where checkpoints, metrics.jsonl and loss.svg go", OnResume::MayChange,
                /*may_be_empty=*/false)
          .choice("device", &C::device, device_names(), "where the run computes", OnResume::MayChange)
          .choice("dtype", &C::dtype, precision_names(),
                  "fp32; tf32 or bf16 (mixed precision) on CUDA", OnResume::MayChange)
          .integer("threads", &C::threads, IntegerRange::within(0, kMaxCpuThreads, ""),
                   "CPU threads; 0: T6_NUM_THREADS, else OMP_NUM_THREADS, else every core (shared among the ranks "
                   "on a host)", OnResume::MayChange)
          .integer("zero_stage", &C::zero_stage, IntegerRange::within(0, 1, ""),
                   "under mpirun: 1 shards AdamW's state across the ranks (ZeRO-1), 0 keeps it whole on each",
                   OnResume::MayChange)
          .number("bucket_mb", &C::bucket_mb, NumberRange::at_least(0),
                  "under mpirun: MiB of gradients per bucket, each reduced across the ranks as soon as backward has "
                  "finished it; 0: one reduction after backward", OnResume::MayChange);
  return t;
}

const ConfigTable<OptimConfig>& OptimConfig::table() {
  using C = OptimConfig;
  static const ConfigTable<C> t =
      ConfigTable<C>()
          .number("lr", &C::lr, NumberRange::above(0), "peak learning rate", OnResume::Noted)
          .number("min_lr", &C::min_lr, NumberRange::at_least(0), "learning rate at the end of the decay (≤ lr)",
                  OnResume::Noted)
          .integer("warmup_steps", &C::warmup_steps, IntegerRange::at_least(0), "linear warm-up from 0",
                   OnResume::Noted)
          .integer("decay_steps", &C::decay_steps, IntegerRange::at_least(1), "step where the decay reaches min_lr",
                   OnResume::Noted)
          .choice("schedule", &C::schedule, schedule_names(), "shape of the decay after the warm-up", OnResume::Noted)
          .number("beta1", &C::beta1, NumberRange::half_open(0, 1), "AdamW first-moment decay", OnResume::Noted)
          .number("beta2", &C::beta2, NumberRange::half_open(0, 1), "AdamW second-moment decay", OnResume::Noted)
          .number("eps", &C::eps, NumberRange::above(0), "AdamW denominator epsilon", OnResume::Noted)
          .number("weight_decay", &C::weight_decay, NumberRange::at_least(0), "decoupled weight decay",
                  OnResume::Noted)
          .number("grad_clip", &C::grad_clip, NumberRange::at_least(0, "0 turns clipping off"),
                  "clip the global gradient norm to this", OnResume::Noted);
  return t;
}

namespace {

const std::vector<std::string> kSections = {"model", "data", "train", "optim"};

// The top level must be an object of known sections.
void check_sections(const nlohmann::json& j, const std::string& where) {
  T6_CHECK(j.is_object(), where, " must be a JSON object, got ", j.dump());
  for (const auto& [key, value] : j.items()) {
    T6_CHECK(std::find(kSections.begin(), kSections.end(), key) != kSections.end(), where, ": unknown key \"", key,
             "\"", did_you_mean(key, kSections), "; allowed keys: ", join_quoted(kSections));
  }
}

template <class Section>
void read_section(const nlohmann::json& j, const char* name, Section& out, const std::string& where) {
  if (j.contains(name)) Section::table().read(j[name], out, where + ": " + name);
}

// Calls visit(section name, the section's table, its value in a, its value in b) for every section.
template <class Visit>
void for_each_section(const TrainConfig& a, const TrainConfig& b, Visit visit) {
  visit("model", ModelConfig::table(), a.model, b.model);
  visit("data", DataConfig::table(), a.data, b.data);
  visit("train", TrainSection::table(), a.train, b.train);
  visit("optim", OptimConfig::table(), a.optim, b.optim);
}

}  // namespace

TrainConfig TrainConfig::from_json(const nlohmann::json& j, const std::string& where) {
  check_sections(j, where);
  TrainConfig c;
  if (j.contains("model")) c.model = ModelConfig::from_json(j["model"], where + ": model");
  c.train.seq_len = c.model.block_size;  // the default follows the model
  read_section(j, "data", c.data, where);
  read_section(j, "train", c.train, where);
  read_section(j, "optim", c.optim, where);
  c.validate(where);
  return c;
}

void TrainConfig::validate(const std::string& where) const {
  model.validate(where + ": model");
  T6_CHECK(data.tokenizer != TokenizerKind::Byte || model.vocab_size >= 256, where,
           ": model.vocab_size must be ≥ 256 for the byte tokenizer, got ", model.vocab_size);
  T6_CHECK(data.tokenizer != TokenizerKind::GPT2 || model.vocab_size >= 50257, where,
           ": model.vocab_size must be ≥ 50257 for the gpt2 tokenizer (the paper pads it to 50304), got ",
           model.vocab_size);
  const std::string t = where + ": train";
  int64_t tokens_per_step = 0;
  T6_CHECK(!__builtin_mul_overflow(train.batch_size, train.seq_len, &tokens_per_step) &&
               !__builtin_mul_overflow(tokens_per_step, train.grad_accum, &tokens_per_step),
           t, ".batch_size × seq_len × grad_accum (", train.batch_size, " × ", train.seq_len, " × ", train.grad_accum,
           ") does not fit in 64 bits; use sizes a step can hold");
  T6_CHECK(train.seq_len <= model.block_size, t, ".seq_len (", train.seq_len, ") must be ≤ model.block_size (",
           model.block_size, ")");
  T6_CHECK(train.dtype == Precision::FP32 || train.device == Device::CUDA, t, ".dtype \"",
           precision_names().name(train.dtype), "\" needs train.device \"cuda\"; the CPU trains in fp32");
  const std::string o = where + ": optim";
  T6_CHECK(optim.min_lr <= optim.lr, o, ".min_lr must lie in [0, lr], got ", optim.min_lr);
  T6_CHECK(optim.schedule == Schedule::Constant || optim.decay_steps >= optim.warmup_steps, o, ".decay_steps (",
           optim.decay_steps, ") must be ≥ optim.warmup_steps (", optim.warmup_steps, "): the ",
           schedule_names().name(optim.schedule), " decay starts after the warm-up");
}

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json j;
  for_each_section(*this, *this, [&](const char* name, const auto& table, const auto& section, const auto&) {
    j[name] = table.write(section);
  });
  return j;
}

std::vector<ConfigChange> TrainConfig::changes_since(const nlohmann::json& saved) const {
  std::vector<ConfigChange> changes;
  const nlohmann::json now = to_json();
  for_each_section(*this, *this, [&](const char* name, const auto& table, const auto&, const auto&) {
    for (const auto& key : table.keys()) {
      const nlohmann::json old_value = saved.contains(name) && saved[name].contains(key.name) ? saved[name][key.name]
                                                                                              : nlohmann::json();
      const nlohmann::json& new_value = now[name][key.name];
      if (old_value != new_value) changes.push_back({cat(name, ".", key.name), old_value, new_value, key.on_resume});
    }
  });
  return changes;
}

std::string TrainConfig::key_reference() {
  const TrainConfig defaults;
  std::string text = "| key | allowed values | default | on resume | meaning |\n|---|---|---|---|---|\n";
  const auto on_resume = [](OnResume r) {
    return r == OnResume::MustMatch ? "must match" : r == OnResume::MayChange ? "may change" : "may change (noted)";
  };
  for_each_section(defaults, defaults, [&](const char* name, const auto& table, const auto& section, const auto&) {
    for (const auto& key : table.keys()) {
      std::string shown = key.write(section).dump();
      if (std::string(name) == "train" && key.name == "seq_len") shown = "model.block_size";
      text += cat("| `", name, ".", key.name, "` | ", key.allowed, " | `", shown, "` | ", on_resume(key.on_resume),
                  " | ", key.help, " |\n");
    }
  });
  return text;
}

nlohmann::json read_json_file(const std::string& path) {
  std::error_code error;
  T6_CHECK(std::filesystem::is_regular_file(path, error), path, ": ",
           std::filesystem::exists(path, error) ? "not a regular file (a directory?); give the path of a JSON file"
                                                : "cannot open the file (does it exist and is it readable?)");
  std::ifstream in(path);
  T6_CHECK(in.good(), path, ": cannot open the file (does it exist and is it readable?)");
  std::stringstream text;
  text << in.rdbuf();
  // The parser keeps only one of two equal keys; which one a user meant is ambiguous, so say so.
  std::vector<std::set<std::string>> keys_by_depth;
  auto no_duplicate_keys = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    const auto level = static_cast<size_t>(depth);
    if (event == Event::object_start) {
      keys_by_depth.resize(std::max(keys_by_depth.size(), level + 2));
      keys_by_depth[level + 1].clear();
    } else if (event == Event::key) {
      const std::string& key = parsed.get_ref<const std::string&>();
      T6_CHECK(keys_by_depth[level].insert(key).second, path, ": the key \"", key,
               "\" appears twice in one object; keep one");
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text.str(), no_duplicate_keys);
  } catch (const nlohmann::json::exception& e) {  // syntax errors, and numbers no double can hold
    const std::string what = e.what();  // "[json.exception.parse_error.101] parse error at line …": drop the id
    throw Error(cat(path, ": not valid JSON: ", what.substr(what.find("] ") == std::string::npos ? 0 : what.find("] ") + 2)));
  }
}

namespace {
bool is_training_config(const nlohmann::json& j) {
  return j.is_object() && std::any_of(kSections.begin(), kSections.end(), [&](const std::string& s) { return j.contains(s); });
}
}  // namespace

ModelConfig read_model_config(const std::string& path) {
  const nlohmann::json j = read_json_file(path);
  if (!is_training_config(j)) return ModelConfig::from_json(j, path);
  check_sections(j, path);
  return j.contains("model") ? ModelConfig::from_json(j["model"], path + ": model") : ModelConfig{};
}

DataConfig read_data_config(const std::string& path) {
  const nlohmann::json j = read_json_file(path);
  DataConfig data;
  if (!is_training_config(j)) return data;
  check_sections(j, path);
  read_section(j, "data", data, path);
  return data;
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
