// The one JSON file that describes a training run: model, data, train and optim sections. Every key
// has a default; unknown keys, wrong types and impossible values are errors that name the section,
// the key and the allowed values (with a "did you mean" hint).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/model_config.h"

namespace t6 {

struct DataConfig {
  std::string train = "data/train_*.bin";  // glob of token shards
  std::string val = "data/val_*.bin";
  std::string tokenizer = "byte";  // "byte" or "gpt2"
  bool shuffle = true;
};

struct TrainSection {
  int64_t batch_size = 16;
  int64_t seq_len = 128;
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
  std::string device = "cpu";  // "cpu" or "cuda"
  std::string dtype = "fp32";  // "fp32", "tf32" (CUDA) or "bf16" (CUDA mixed precision)
  int64_t threads = 0;         // CPU threads; 0: T6_NUM_THREADS / OMP_NUM_THREADS / all cores
};

struct OptimConfig {
  double lr = 1e-3;
  double min_lr = 1e-4;
  int64_t warmup_steps = 100;
  int64_t decay_steps = 2000;
  std::string schedule = "cosine";  // "cosine", "linear" or "constant"
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;  // 0: no clipping
};

struct TrainConfig {
  ModelConfig model;
  DataConfig data;
  TrainSection train;
  OptimConfig optim;

  // Parses and validates; `where` (usually the file name) prefixes every message.
  static TrainConfig from_json(const nlohmann::json& j, const std::string& where);
  static TrainConfig load(const std::string& path);  // read + parse + validate
  nlohmann::json to_json() const;
  void validate(const std::string& where) const;
};

// Applies "section.key=value" overrides (from --set) to a config's JSON before it is parsed. The value
// is read as JSON when it parses (numbers, true/false, quoted strings), else as a plain string.
void apply_override(nlohmann::json& config, const std::string& assignment);

// Reads a JSON file; errors name the file, and the line and column of a syntax error.
nlohmann::json read_json_file(const std::string& path);

// The model config in a file that is either a training config (with a "model" section) or a bare
// model config (model keys at the top level).
ModelConfig read_model_config(const std::string& path);

}  // namespace t6
