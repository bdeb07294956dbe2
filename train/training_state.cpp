#include "train/training_state.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <regex>

#include "train/model_checkpoint.h"
#include "train/io/safetensors.h"

namespace t6 {

namespace fs = std::filesystem;

namespace {
const char* const kProgressKey = "t6_training_progress";

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%06lld", static_cast<long long>(step));
  return buf;
}
}  // namespace

std::string checkpoint_model_path(const std::string& out_dir, int64_t step) {
  return (fs::path(out_dir) / (step_name(step) + ".safetensors")).string();
}

std::string checkpoint_state_path(const std::string& out_dir, int64_t step) {
  return (fs::path(out_dir) / (step_name(step) + ".state.safetensors")).string();
}

void save_checkpoint(const std::string& out_dir, const T6Model& model, const OptimizerState& optimizer,
                     const TrainingProgress& progress, const std::string& tokenizer) {
  save_model(model, checkpoint_model_path(out_dir, progress.step), tokenizer);
  std::vector<Tensor> host;
  std::vector<SafetensorsWriteEntry> entries;
  const auto params = model.named_parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    for (const auto& [prefix, moments] : {std::pair{"exp_avg.", &optimizer.exp_avg}, {"exp_avg_sq.", &optimizer.exp_avg_sq}}) {
      host.push_back((*moments)[i].to_device(Device::CPU).contiguous_data());
      entries.push_back({prefix + params[i].first, host.back().shape(), host.back().data<float>()});
    }
  }
  const nlohmann::json record = {{"step", progress.step},
                                 {"optimizer_steps", optimizer.steps},
                                 {"world_size", progress.world_size},
                                 {"data", progress.data_state},
                                 {"config", progress.config}};
  write_safetensors(checkpoint_state_path(out_dir, progress.step), entries, {{kProgressKey, record.dump()}});
}

std::vector<int64_t> list_checkpoints(const std::string& out_dir) {
  std::vector<int64_t> steps;
  std::error_code error;
  if (!fs::is_directory(out_dir, error)) return steps;
  const std::regex pattern(R"(step_(\d{6,18})\.state\.safetensors)");  // 18 digits always fit an int64
  for (fs::directory_iterator entry(out_dir, error), end; !error && entry != end; entry.increment(error)) {
    std::smatch m;
    const std::string name = entry->path().filename().string();
    if (std::regex_match(name, m, pattern)) {
      const int64_t step = std::stoll(m[1]);
      if (fs::exists(checkpoint_model_path(out_dir, step), error)) steps.push_back(step);
    }
  }
  T6_CHECK(!error, out_dir, ": cannot list the checkpoints in this directory: ", error.message());
  std::sort(steps.begin(), steps.end());
  return steps;
}

void prune_checkpoints(const std::string& out_dir, int64_t keep) {
  const std::vector<int64_t> steps = list_checkpoints(out_dir);
  for (size_t i = 0; i + static_cast<size_t>(keep) < steps.size(); ++i) {
    // The state first: the pair stops counting as a checkpoint before its model goes.
    for (const std::string& path :
         {checkpoint_state_path(out_dir, steps[i]), checkpoint_model_path(out_dir, steps[i])}) {
      std::error_code error;
      fs::remove(path, error);
      T6_CHECK(!error, path, ": cannot remove this old checkpoint file (train.keep_checkpoints): ", error.message());
    }
  }
}

TrainingProgress read_progress(const std::string& out_dir, int64_t step) {
  const SafetensorsFile state = SafetensorsFile::open(checkpoint_state_path(out_dir, step));
  auto it = state.metadata().find(kProgressKey);
  T6_CHECK(it != state.metadata().end(), state.path(), ": not a t6 training-state file (no \"", kProgressKey,
           "\" metadata)");
  const nlohmann::json record = nlohmann::json::parse(it->second, nullptr, false);
  T6_CHECK(record.is_object() && record.contains("step") && record["step"].is_number_integer() &&
               record.contains("optimizer_steps") && record["optimizer_steps"].is_number_integer() &&
               record.contains("data") && record.contains("config") && record["config"].is_object(),
           state.path(), ": the training-state record is damaged; resume from an earlier checkpoint or start anew");
  T6_CHECK(record["step"].get<int64_t>() == step, state.path(), ": records step ", record["step"].dump(),
           " but its name says step ", step, "; was it renamed? Resume from an earlier checkpoint or start anew");
  const nlohmann::json world_size = record.value("world_size", nlohmann::json(1));
  T6_CHECK(world_size.is_number_integer() && world_size.get<int64_t>() >= 1, state.path(),
           ": the training-state record is damaged (world_size); resume from an earlier checkpoint or start anew");
  return {record["step"].get<int64_t>(), record["data"], record["config"], record["optimizer_steps"].get<int64_t>(),
          world_size.get<int64_t>()};
}

OptimizerState load_checkpoint(const std::string& out_dir, const TrainingProgress& progress, T6Model& model) {
  const SafetensorsFile state = SafetensorsFile::open(checkpoint_state_path(out_dir, progress.step));
  OptimizerState optimizer;
  optimizer.steps = progress.optimizer_steps;
  std::vector<Tensor>& exp_avg = optimizer.exp_avg;
  std::vector<Tensor>& exp_avg_sq = optimizer.exp_avg_sq;
  for (const auto& [name, p] : model.named_parameters()) {
    for (auto [prefix, out] : {std::pair{"exp_avg.", &exp_avg}, {"exp_avg_sq.", &exp_avg_sq}}) {
      const SafetensorsTensor* t = state.find(prefix + name);
      T6_CHECK(t && t->shape == p.shape(), state.path(), ": missing or misshapen optimizer state \"", prefix, name, "\"");
      Tensor host = empty(p.shape(), DType::F32);
      state.read_float32(prefix + name, host.data<float>());
      out->push_back(host);
    }
  }
  load_model_weights(model, SafetensorsFile::open(checkpoint_model_path(out_dir, progress.step)));
  return optimizer;
}

}  // namespace t6
