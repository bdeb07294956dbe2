// Training a T6: `t6 train` runs Trainer::run, and `t6 bench train` times Trainer::step, so the step
// that is benchmarked is the step that trains.
//
// A step is one optimizer update: grad_accum micro-batches of forward and backward (each adding
// 1/grad_accum of its gradient), global-norm clipping and AdamW at learning_rate(optim, s − 1) for step
// s (train/lr_schedule.h). run() repeats it up to train.steps and, around it, writes {"step", "loss",
// "lr", "grad_norm", "tokens_per_s"} to metrics.jsonl (loss: the mean forward loss of the step's
// micro-batches; grad_norm: the global norm before clipping); after every eval_every-th step and the
// last one {"step", "val_loss"} (when there is validation data) and loss.svg; after every
// save_every-th step and the last one checkpoint step_NNNNNN (train/training_state.h), keeping the
// newest keep_checkpoints. Deterministic: the same config gives bit-identical losses on the CPU (with
// the same thread count), and a resumed run continues exactly as if never stopped.
//
// Data parallel (a group of N ranks, train/parallel/): every rank trains on its rows of the same
// windows (train/data/batch_loader.h) and DataParallelAdamW averages the gradients, so the run matches
// one process with batch N·B up to the rounding of the reduction order. The loss reported is the mean
// over all ranks; metrics, progress, samples, the plot and checkpoints come from rank 0 only, and the
// ranks agree after every step whether to stop (a signal reaching some of them first).
#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <ostream>

#include "nn/t6_model.h"
#include "core/communicator.h"
#include "train/parallel/data_parallel.h"
#include "train/data/batch_loader.h"
#include "train/data/tokenizer.h"
#include "train/execution.h"
#include "train/metrics_log.h"
#include "train/train_config.h"
#include "train/training_state.h"

namespace t6 {

struct StepResult {
  int64_t step = 0;  // counting from 1, the steps before a resume included
  double loss = 0.0, lr = 0.0, grad_norm = 0.0;
  double seconds = 0.0;  // wall time of the step, the device's work included
};

struct TrainResult {
  int64_t steps_done = 0;       // the last step taken (counting the steps before a resume)
  double final_train_loss = 0.0;
  double final_val_loss = 0.0;  // of the last evaluation; NaN when there was none (data.val = "")
  int stop_signal = 0;          // SIGINT (Ctrl-C) or SIGTERM: saved and stopped early; 0 when not
};

class Trainer {
 public:
  // For `t6 train`: batches from the config's token shards. With resume, continues from the newest
  // complete checkpoint in out_dir (an error if there is none, if train.steps does not go past it, or
  // if it was written with a config that differs in a key that must match); else starts out_dir,
  // from init_from when set. Progress goes to `out`, notes to `err`. Throws t6::Error on bad input.
  // `group`: the data-parallel ranks (null: this process alone); config.train.batch_size is per rank.
  Trainer(const TrainConfig& config, bool resume, std::ostream& out, std::ostream& err,
          Communicator* group = nullptr);
  // For `t6 bench train`: the same model, optimizer and step over `batches`, writing nothing.
  Trainer(const TrainConfig& config, std::unique_ptr<BatchSource> batches, Communicator* group = nullptr);

  // One optimizer update. A non-finite loss or gradient norm throws t6::Error naming the step before
  // anything changes, and nothing is saved, so the newest checkpoint stays a good one.
  StepResult step();
  // Steps until train.steps, reporting, evaluating, sampling and saving as the config says. Ctrl-C
  // (SIGINT) or SIGTERM finishes the current step, saves it and returns with stop_signal set.
  TrainResult run();

  // For a caller that trains several runs one after another (t6 experiment): a label that leads every
  // progress line ("run 2/4 mha") and the steps the later runs have left, which a second ETA covers
  // too, extrapolated at this run's speed.
  struct ProgressScope {
    std::string label;
    int64_t steps_after = 0;
  };
  void set_progress_scope(ProgressScope scope) { scope_ = std::move(scope); }

  const T6Model& model() const { return *model_; }
  int64_t steps_done() const { return step_; }

 private:
  void check_memory() const;  // refuses a config that cannot fit before anything is allocated
  void start_fresh();
  void resume_from_newest_checkpoint();
  void check_resumable(const TrainingProgress& progress) const;
  void report(const StepResult& s);
  double evaluate_and_plot();
  void save_checkpoint();
  std::string sample_text() const;
  [[noreturn]] void stop_non_finite(const std::string& what) const;
  double mean_over_ranks(double value);  // the value itself without a group
  int agreed_stop(int local_signal);
  int world_size() const { return group_ ? group_->size() : 1; }

  TrainConfig config_;
  ExecutionScope execution_;
  std::unique_ptr<BatchSource> train_data_;
  std::unique_ptr<BatchLoader> val_data_;  // null without validation data
  std::unique_ptr<Tokenizer> tokenizer_;   // for samples; null when there are none
  std::unique_ptr<T6Model> model_;
  std::unique_ptr<DataParallelAdamW> optimizer_;
  std::optional<MetricsLog> metrics_;       // only for run()
  std::ostream* out_ = nullptr;
  std::ostream* err_ = nullptr;
  Communicator* group_ = nullptr;
  bool leader_ = true;                      // rank 0, or the only process: writes and reports
  int64_t step_ = 0;                        // steps done
  int64_t first_step_ = 1;                  // of this run (after a resume: the resumed step + 1)
  std::chrono::steady_clock::time_point started_;  // when this run's first step began
  ProgressScope scope_;
};

}  // namespace t6
