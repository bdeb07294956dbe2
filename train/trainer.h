// The training loop of `t6 train`: batches from token shards, forward/backward with gradient
// accumulation, global-norm clipping, AdamW on the spec's schedule, periodic evaluation, checkpoints,
// samples, metrics.jsonl and loss.svg in out_dir. Deterministic: the same config gives bit-identical
// losses on the CPU (with the same thread count), and --resume continues exactly as if never stopped.
//
// Steps count optimizer updates from 1. Step s runs at learning_rate(optim, s − 1) (train/lr_schedule.h)
// and writes {"step", "loss", "lr", "grad_norm", "tokens_per_s"} to metrics.jsonl, where loss is the mean
// forward loss of its micro-batches before its update and grad_norm the global norm before clipping.
// After every eval_every-th step and the last one: {"step", "val_loss"} (when there is validation data)
// and loss.svg. After every save_every-th step and the last one: checkpoint step_NNNNNN (see
// train/training_state.h), keeping the newest keep_checkpoints.
#pragma once
#include <ostream>

#include "train/train_config.h"

namespace t6 {

struct TrainResult {
  int64_t steps_done = 0;       // the last step taken (counting the steps before a resume)
  double final_train_loss = 0.0;
  double final_val_loss = 0.0;  // of the last evaluation; NaN when there was none (data.val = "")
  bool interrupted = false;     // Ctrl-C: saved and stopped early
};

// Runs the training the config describes, writing progress to `out` and notes to `err`. With resume,
// continues from the newest complete checkpoint in out_dir (an error if there is none, if train.steps
// does not go past it, or if it was written with a config that differs in anything but bookkeeping
// keys and optimizer settings). init_from is read only when not resuming. Throws t6::Error on bad
// input, and on a non-finite loss, gradient norm or weight (naming the step; nothing is saved then,
// so the newest checkpoint stays a good one).
// Ctrl-C (SIGINT) while it runs finishes the current step, saves it and returns with interrupted set;
// a second Ctrl-C kills the process. The previous SIGINT handler is restored on return.
TrainResult train_model(const TrainConfig& config, bool resume, std::ostream& out, std::ostream& err);

}  // namespace t6
