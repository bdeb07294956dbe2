// The one JSON file that describes a training run: model, data, train and optim sections. Every key
// is declared once, in the section's table (train/train_config.cpp, nn/model_config.cpp): its type,
// allowed values, help line and whether a resumed run may change it. Defaults are the initialisers
// below. Unknown keys, wrong types and impossible values are errors that name the section, the key
// and the allowed values (with a "did you mean" hint).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config_table.h"
#include "core/device.h"
#include "nn/model_config.h"
#include "train/data/tokenizer.h"
#include "train/execution.h"

namespace t6 {

enum class Schedule : uint8_t { Cosine, Linear, Constant };
const EnumNames<Schedule>& schedule_names();  // "cosine", "linear", "constant"

struct DataConfig {
  std::string train = "data/train_*.bin";  // glob of token shards
  std::string val = "data/val_*.bin";
  TokenizerKind tokenizer = TokenizerKind::Byte;
  bool shuffle = true;
  static const ConfigTable<DataConfig>& table();
};

struct TrainSection {
  int64_t batch_size = 16;
  int64_t seq_len = 1024;  // when the config leaves it out: the model's block_size
  int64_t grad_accum = 1;
  int64_t steps = 2000;
  int64_t eval_every = 200;
  int64_t eval_batches = 20;  // 0: every complete window of the validation data
  int64_t save_every = 500;
  int64_t keep_checkpoints = 3;
  int64_t sample_every = 500;  // 0: no samples
  uint64_t seed = 1337;
  std::string init_from;  // a safetensors model to start from
  std::string out_dir = "runs/NAME";
  Device device = Device::CPU;
  Precision dtype = Precision::FP32;
  int64_t threads = 0;  // CPU threads; 0: T6_NUM_THREADS / OMP_NUM_THREADS / all cores (shared by local ranks)
  int64_t zero_stage = 0;  // data parallel: 1 shards AdamW's state across the ranks (ZeRO-1)
  double bucket_mb = 25;   // data parallel: gradients reduced together while backward goes on; 0: after it
  static const ConfigTable<TrainSection>& table();
  ExecutionSettings execution() const { return {device, dtype, threads}; }
};

struct OptimConfig {
  double lr = 1e-3;
  double min_lr = 1e-4;
  int64_t warmup_steps = 100;
  int64_t decay_steps = 2000;
  Schedule schedule = Schedule::Cosine;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;  // 0: no clipping
  static const ConfigTable<OptimConfig>& table();
};

// A key whose value differs between two configs, and what a resumed run may do about it.
struct ConfigChange {
  std::string key;  // "optim.lr"
  nlohmann::json old_value, new_value;
  OnResume on_resume;
};

struct TrainConfig {
  ModelConfig model;
  DataConfig data;
  TrainSection train;
  OptimConfig optim;

  // Parses and validates; `where` (usually the file name) prefixes every message.
  static TrainConfig from_json(const nlohmann::json& j, const std::string& where);
  nlohmann::json to_json() const;
  void validate(const std::string& where) const;
  // Every key whose value in `saved` (a config's to_json(), e.g. from a checkpoint) differs from this one.
  std::vector<ConfigChange> changes_since(const nlohmann::json& saved) const;
  // Every key of every section as a Markdown table (key, allowed values, default, on resume, meaning):
  // the reference in README.md, printed by `t6 info --keys`.
  static std::string key_reference();
};

// Applies "section.key=value" overrides (from --set) to a config's JSON before it is parsed. The value
// is read as JSON when it parses (numbers, true/false, quoted strings), else as a plain string.
void apply_override(nlohmann::json& config, const std::string& assignment);

// Reads a JSON file; errors name the file, and the line and column of a syntax error.
nlohmann::json read_json_file(const std::string& path);

// One section of a file that is either a training config or, for the model, a bare model config (model
// keys at the top level). Only that section is read and validated: the defaults of a train section
// the file does not have never stand in the way of evaluating or sampling a model.
ModelConfig read_model_config(const std::string& path);
DataConfig read_data_config(const std::string& path);

}  // namespace t6
