// Checkpoints of a training run in out_dir: step_NNNNNN.safetensors (the model, loadable anywhere) next
// to step_NNNNNN.state.safetensors (AdamW moments as tensors; step, data position and config in the
// metadata), so --resume continues bit-identically. Both are written atomically, the state file last:
// a checkpoint counts only once its state file exists.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "nn/t6_model.h"
#include "train/adamw.h"

namespace t6 {

struct TrainingProgress {
  int64_t step = 0;             // optimizer updates completed
  nlohmann::json data_state;    // BatchSource::state()
  nlohmann::json config;        // the run's full config, to refuse resuming with a different one
  int64_t optimizer_steps = 0;  // AdamW's count, for bias correction
  int64_t world_size = 1;       // ranks of the run that saved it (1 when the record predates ranks)
};

std::string checkpoint_model_path(const std::string& out_dir, int64_t step);
std::string checkpoint_state_path(const std::string& out_dir, int64_t step);

void save_checkpoint(const std::string& out_dir, const T6Model& model, const OptimizerState& optimizer,
                     const TrainingProgress& progress, const std::string& tokenizer);

// Steps of the complete checkpoints in out_dir, oldest first.
std::vector<int64_t> list_checkpoints(const std::string& out_dir);
// Removes all but the newest `keep` complete checkpoints.
void prune_checkpoints(const std::string& out_dir, int64_t keep);

// The progress record of checkpoint `step` alone (its state file's metadata): what a resume checks
// against its config before it reads any tensor.
TrainingProgress read_progress(const std::string& out_dir, int64_t step);
// Loads the model weights of the checkpoint `progress` describes and returns its optimizer state.
// Everything is validated before the model changes (a truncated or corrupt file throws and leaves it
// as it was).
OptimizerState load_checkpoint(const std::string& out_dir, const TrainingProgress& progress, T6Model& model);

}  // namespace t6
