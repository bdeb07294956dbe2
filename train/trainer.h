// The training loop of `t6 train`: batches from token shards, forward/backward with gradient
// accumulation, global-norm clipping, AdamW on the spec's schedule, periodic evaluation, checkpoints,
// samples, metrics.jsonl and loss.svg in out_dir. Deterministic: the same config gives bit-identical
// losses on the CPU, and --resume continues exactly as if never stopped.
#pragma once
#include <ostream>

#include "train/train_config.h"

namespace t6 {

struct TrainResult {
  int64_t steps_done = 0;
  double final_train_loss = 0.0;
  double final_val_loss = 0.0;  // NaN when the run has no validation data (data.val = "")
  bool interrupted = false;     // Ctrl-C: saved and stopped early
};

// Runs the training the config describes, writing progress to `out` and notes to `err`. With resume,
// continues from the newest complete checkpoint in out_dir (an error if there is none, or if it was
// written with a different config). Throws t6::Error on bad input or a non-finite loss (naming the
// step; the last good checkpoint stays intact).
TrainResult train_model(const TrainConfig& config, bool resume, std::ostream& out, std::ostream& err);

}  // namespace t6
