#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/backend.h"
#include "core/memory_summary.h"
#include "nn/generate.h"
#include "train/evaluate.h"
#include "train/io/atomic_file.h"
#include "train/io/safetensors.h"
#include "train/lr_schedule.h"
#include "train/memory_estimate.h"
#include "train/model_checkpoint.h"
#include "train/stop_request.h"
#include "train/training_state.h"

namespace t6 {

namespace fs = std::filesystem;

namespace {

std::string clock_text(double seconds) {
  const auto s = static_cast<long long>(std::max(0.0, seconds));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

// "key old → new, …" for the changes of the given policy.
std::string describe(const std::vector<ConfigChange>& changes, OnResume policy) {
  std::string text;
  for (const ConfigChange& c : changes) {
    if (c.on_resume != policy) continue;
    text += cat(text.empty() ? "" : ", ", c.key, " ", c.old_value.dump(), " → ", c.new_value.dump());
  }
  return text;
}

// A resume that must not fall back to an older checkpoint: the config or train.steps rule it out.
struct ResumeRefused : Error {
  using Error::Error;
};

std::unique_ptr<T6Model> build_model(const TrainConfig& config, bool load_init_from, Device device) {
  auto model = std::make_unique<T6Model>(config.model);
  if (load_init_from && !config.train.init_from.empty())
    load_model_weights(*model, SafetensorsFile::open(config.train.init_from));
  model->to(device);
  return model;
}

}  // namespace

Trainer::Trainer(const TrainConfig& config, std::unique_ptr<BatchSource> batches, Communicator* group)
    : config_(config),
      execution_(config.train.execution(), "train.device"),
      train_data_(std::move(batches)),
      group_(group),
      leader_(!group || group->rank() == 0) {
  check_memory();
  model_ = build_model(config_, /*load_init_from=*/false, execution_.device());
  optimizer_ = std::make_unique<DataParallelAdamW>(model_->parameters(), config_.optim, group_,
                                                   static_cast<int>(config_.train.zero_stage), config_.train.bucket_mb);
}

Trainer::Trainer(const TrainConfig& config, bool resume, std::ostream& out, std::ostream& err, Communicator* group)
    : config_(config),
      execution_(config.train.execution(), "train.device"),
      out_(&out),
      err_(&err),
      group_(group),
      leader_(!group || group->rank() == 0) {
  const TrainSection& t = config_.train;
  // The other ranks compute what rank 0 does, but say nothing: one progress line per step, not N.
  static std::ostream silent(nullptr);
  if (!leader_) out_ = err_ = &silent;
  check_memory();
  // Data next: a missing or malformed shard should fail before any model work.
  const RankSlice slice{group_ ? group_->rank() : 0, world_size()};
  train_data_ = std::make_unique<BatchLoader>(config_.data.train, t.batch_size, t.seq_len, config_.model.vocab_size,
                                              config_.data.shuffle, t.seed, slice);
  if (!config_.data.val.empty())
    val_data_ = std::make_unique<BatchLoader>(config_.data.val, t.batch_size, t.seq_len, config_.model.vocab_size,
                                              false, t.seed, slice);
  if (t.sample_every > 0) {
    try {
      if (leader_) tokenizer_ = make_tokenizer(config_.data.tokenizer);
    } catch (const Error& e) {
      *err_ << "note: no samples during training: " << e.what() << "\n";
    }
  }
  model_ = build_model(config_, /*load_init_from=*/!resume, execution_.device());
  optimizer_ = std::make_unique<DataParallelAdamW>(model_->parameters(), config_.optim, group_,
                                                   static_cast<int>(t.zero_stage), t.bucket_mb);
  if (leader_) {
    for (const std::string& name : remove_stale_temporaries(t.out_dir))
      *err_ << "note: removed " << name << ", left in " << t.out_dir << " by a save that was killed\n";
  }
  resume ? resume_from_newest_checkpoint() : start_fresh();
  if (leader_)
    write_file_atomically((fs::path(t.out_dir) / "config.json").string(), config_.to_json().dump(2) + "\n");
  *err_ << "model: " << model_->parameter_count() << " parameters, attention " << config_.model.attention_name()
        << ", on " << backend(execution_.device()).describe();
  if (group_) *err_ << ", " << group_->size() << " ranks of batch " << t.batch_size;
  *err_ << "\n";
}

void Trainer::check_memory() const {
  const TrainSection& t = config_.train;
  check_memory_fits(training_memory(config_.model, t.batch_size, t.seq_len, execution_.device()), execution_.device(),
                    "lower train.batch_size or train.seq_len (train.grad_accum keeps the tokens per step), or the "
                    "model's size (model.n_layer, model.n_embd)");
}

void Trainer::start_fresh() {
  const std::string& dir = config_.train.out_dir;
  T6_CHECK(list_checkpoints(dir).empty(), dir, ": already holds checkpoints; pass --resume to continue that run, "
           "or choose another train.out_dir");
  if (!leader_) return;
  std::error_code error;
  fs::create_directories(dir, error);
  T6_CHECK(!error, "train.out_dir \"", dir, "\": cannot create the directory: ", error.message());
  metrics_.emplace(MetricsLog::start((fs::path(dir) / "metrics.jsonl").string()));
}

void Trainer::resume_from_newest_checkpoint() {
  const std::string& dir = config_.train.out_dir;
  const std::vector<int64_t> steps = list_checkpoints(dir);
  T6_CHECK(!steps.empty(), dir, ": no checkpoint to resume from; run without --resume to start training");
  // Newest first; an unreadable checkpoint (a disk fault, a file damaged by hand) gives way to the
  // one before it. A config that does not match is not damage: it stops the resume at once.
  std::optional<TrainingProgress> resumed;
  std::string unreadable;  // why each skipped checkpoint could not be read
  for (auto step = steps.rbegin(); step != steps.rend() && !resumed; ++step) {
    try {
      const TrainingProgress p = read_progress(dir, *step);
      check_resumable(p);
      optimizer_->set_state(load_checkpoint(dir, p, *model_));
      resumed = p;
    } catch (const ResumeRefused&) {
      throw;
    } catch (const Error& e) {
      *err_ << "warning: skipping the checkpoint of step " << *step << ", which cannot be read: " << e.what() << "\n";
      unreadable += cat("\n  - step ", *step, ": ", e.what());
    }
  }
  T6_CHECK(resumed, dir, ": no checkpoint in it can be read; start a new run in another out_dir, or restore the "
           "checkpoint files:", unreadable);
  train_data_->restore(resumed->data_state);
  step_ = resumed->step;
  first_step_ = step_ + 1;
  if (leader_) metrics_.emplace(MetricsLog::resume((fs::path(dir) / "metrics.jsonl").string(), step_));
  *err_ << "resumed from " << checkpoint_model_path(dir, step_) << " at step " << step_ << "\n";
}

void Trainer::check_resumable(const TrainingProgress& p) const {
  const std::string& dir = config_.train.out_dir;
  std::vector<ConfigChange> changes = config_.changes_since(p.config);
  // The batch that must match is the global one: N ranks of batch B continue as M ranks of batch B'
  // when N·B = M·B' (the data state checks the same).
  std::erase_if(changes, [&](const ConfigChange& c) {
    return c.key == "train.batch_size" && c.old_value.is_number_integer() &&
           c.old_value.get<int64_t>() * p.world_size == config_.train.batch_size * world_size();
  });
  const std::string fixed = describe(changes, OnResume::MustMatch);
  if (!fixed.empty())
    throw ResumeRefused(cat(dir, ": the checkpoint at step ", p.step, " was written with a different config (", fixed,
                            "); resume with the config it was trained with, or start a new run in another out_dir"));
  if (config_.train.steps <= p.step)
    throw ResumeRefused(cat(dir, ": the run already reached step ", p.step, " and train.steps is ",
                            config_.train.steps, "; raise train.steps (e.g. --set train.steps=",
                            p.step + config_.train.steps, ") to train further"));
  if (const std::string noted = describe(changes, OnResume::Noted); !noted.empty())
    *err_ << "note: resuming with changed optimizer settings (" << noted << ")\n";
}

StepResult Trainer::step() {
  const auto start = std::chrono::steady_clock::now();
  const TrainSection& t = config_.train;
  StepResult r;
  r.step = step_ + 1;
  r.lr = learning_rate(config_.optim, step_);
  model_->zero_grad();
  // The losses stay on the device until every micro-batch is queued: reading one back would make the
  // host wait for the device in the middle of the step.
  std::vector<Tensor> losses;
  std::vector<int32_t> inputs, targets;
  for (int64_t micro = 0; micro < t.grad_accum; ++micro) {
    train_data_->next_batch(inputs, targets);
    const Tensor x = from_ints(inputs, {t.batch_size, t.seq_len}), y = from_ints(targets, {t.batch_size, t.seq_len});
    const Tensor loss = model_->loss(x, y);
    losses.push_back(loss.detach());
    // Each micro-batch adds 1/grad_accum of its gradient: the update sees the mean over micro-batches.
    // The last one's backward finishes the gradients, so the reduction over the ranks may start there.
    const bool last = micro + 1 == t.grad_accum;
    scale(loss, 1.0 / static_cast<double>(t.grad_accum))
        .backward(Tensor(), false, last ? optimizer_->reduce_during_backward() : GradReadyHook());
  }
  double loss_sum = 0.0;
  for (size_t micro = 0; micro < losses.size(); ++micro) {
    const double value = losses[micro].item();
    if (!std::isfinite(value))
      stop_non_finite(cat("the training loss became ", value, " at step ", r.step, " (micro-batch ", micro, ")"));
    loss_sum += value;
  }
  // Every rank's loss is a mean over B·T tokens, so their mean is the loss of the whole batch.
  loss_sum = mean_over_ranks(loss_sum);
  try {
    r.grad_norm = optimizer_->step(r.lr);
  } catch (const Error& e) {
    stop_non_finite(cat("at step ", r.step, ": ", e.what()));
  }
  backend(execution_.device()).synchronize();
  r.loss = loss_sum / static_cast<double>(t.grad_accum);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  step_ = r.step;
  return r;
}

TrainResult Trainer::run() {
  const TrainSection& t = config_.train;
  TrainResult result;
  result.final_val_loss = std::nan("");
  const StopOnSignal stop;
  const bool live = isatty(fileno(stderr));
  started_ = std::chrono::steady_clock::now();
  while (step_ < t.steps) {
    const StepResult s = step();
    const int stop_signal = agreed_stop(stop.requested());
    report(s);
    result.final_train_loss = s.loss;
    result.steps_done = s.step;
    const bool last = s.step == t.steps;
    if (s.step % t.eval_every == 0 || last) {
      if (live) *err_ << "\n";
      result.final_val_loss = evaluate_and_plot();
    }
    if (tokenizer_ && s.step % t.sample_every == 0) {  // rank 0 alone has a tokenizer
      if (live) *err_ << "\n";
      *out_ << "step " << s.step << " sample: " << sample_text() << "\n" << std::flush;
    }
    const bool saves = s.step % t.save_every == 0 || last;
    if (saves || stop_signal) save_checkpoint();
    if (stop_signal) {
      result.stop_signal = stop_signal;
      *err_ << "\ninterrupted: saved step " << s.step << " to " << checkpoint_model_path(t.out_dir, s.step)
            << "; continue with --resume\n";
      break;
    }
  }
  if (live) *err_ << "\n";
  return result;
}

double Trainer::mean_over_ranks(double value) {
  if (!group_) return value;
  Tensor t = from_vector({value}, {1}, DType::F64, execution_.device());
  group_->all_reduce_sum(t);
  return t.item() / static_cast<double>(world_size());
}

// A signal may reach the ranks at different steps (or only some of them): every rank stops after the
// step at which any of them has one, with the signal of the ranks that had it.
int Trainer::agreed_stop(int local_signal) {
  if (!group_) return local_signal;
  Tensor t = from_vector({local_signal != 0 ? 1.0 : 0.0, static_cast<double>(local_signal)}, {2}, DType::F64,
                         execution_.device());
  group_->all_reduce_sum(t);
  const std::vector<double> sums = t.to_double_vector();
  if (sums[0] == 0) return 0;
  return local_signal != 0 ? local_signal : static_cast<int>(std::lround(sums[1] / sums[0]));
}

void Trainer::report(const StepResult& s) {
  if (!leader_) return;
  const TrainSection& t = config_.train;
  const double tokens_per_s =
      s.seconds > 0 ? static_cast<double>(t.batch_size * world_size() * t.seq_len * t.grad_accum) / s.seconds : 0.0;
  metrics_->append({{"step", s.step}, {"loss", s.loss}, {"lr", s.lr}, {"grad_norm", s.grad_norm},
                    {"tokens_per_s", tokens_per_s}});
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  const double seconds_per_step = elapsed / static_cast<double>(s.step - first_step_ + 1);
  char line[256];
  std::snprintf(line, sizeof line, "step %lld/%lld | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s | %s elapsed | ETA %s",
                static_cast<long long>(s.step), static_cast<long long>(t.steps), s.loss, s.lr, s.grad_norm, tokens_per_s,
                clock_text(elapsed).c_str(), clock_text(seconds_per_step * static_cast<double>(t.steps - s.step)).c_str());
  std::string text = line;
  if (!scope_.label.empty()) text = scope_.label + " | " + text;
  if (scope_.steps_after > 0)
    text += " | all runs ETA " + clock_text(seconds_per_step * static_cast<double>(t.steps - s.step + scope_.steps_after));
  const bool live = isatty(fileno(stderr));
  if (live) {
    *err_ << "\r" << text << "\x1b[K" << std::flush;
  } else if (s.step % 10 == 0 || s.step == t.steps || s.step == first_step_) {
    *err_ << text << "\n";
  }
  // After the first step the backend holds what every later step needs (evaluation and samples add
  // little): the one memory line of the run.
  if (s.step == first_step_) {
    *err_ << (live ? "\n" : "") << "memory on " << device_name(execution_.device()) << ": "
          << memory_summary(backend(execution_.device()).memory_stats()) << "\n";
  }
}

double Trainer::evaluate_and_plot() {
  double loss = std::nan("");
  if (val_data_) {
    // Every rank evaluates its rows of the same windows: the mean of the ranks' means is the loss of
    // the whole windows.
    loss = mean_over_ranks(evaluate(*model_, *val_data_, config_.train.eval_batches).mean_loss);
    if (!std::isfinite(loss)) stop_non_finite(cat("the validation loss became ", loss, " after step ", step_));
    if (!leader_) return loss;
    metrics_->append({{"step", step_}, {"val_loss", loss}});
    *out_ << "step " << step_ << ": val loss " << loss << "\n" << std::flush;
  }
  if (!leader_) return loss;
  LossSeries train_series, val_series;
  metrics_->read_series(train_series, val_series);
  write_loss_svg((fs::path(config_.train.out_dir) / "loss.svg").string(), train_series, val_series,
                 "T6 training loss");
  return loss;
}

// Every rank takes part (a sharded optimizer state is gathered); rank 0 writes.
void Trainer::save_checkpoint() {
  const double sum_of_squares = backend(execution_.device()).sum_of_squares(model_->parameters());
  if (!std::isfinite(sum_of_squares)) stop_non_finite(cat("the weights became non-finite at step ", step_));
  const OptimizerState state = optimizer_->state();
  if (!leader_) return;
  const std::string& dir = config_.train.out_dir;
  t6::save_checkpoint(dir, *model_, state, {step_, train_data_->state(), config_.to_json(), state.steps, world_size()},
                      tokenizer_kind_names().name(config_.data.tokenizer));
  prune_checkpoints(dir, config_.train.keep_checkpoints);
}

// A short text from the model, to watch it learn: sampled (seeded, so runs stay reproducible) after the
// tokenizer's end-of-text token, or after a newline when it has none.
std::string Trainer::sample_text() const {
  const std::optional<int32_t> eot = tokenizer_->end_of_text();
  GenerationOptions options;
  options.max_new_tokens = 64;
  options.top_k = 40;
  options.seed = config_.train.seed;
  options.stop_token = eot;
  options.vocab_limit = std::min<int64_t>(tokenizer_->vocab_size(), model_->config.vocab_size);
  const std::vector<int32_t> prompt = eot ? std::vector<int32_t>{*eot} : tokenizer_->encode("\n");
  return tokenizer_->decode(generate(*model_, {prompt}, options).tokens[0]);
}

// Nothing is saved after a non-finite loss, gradient or weight, so the newest checkpoint on disk is
// always a good one.
void Trainer::stop_non_finite(const std::string& what) const {
  const std::string& dir = config_.train.out_dir;
  const std::vector<int64_t> saved = list_checkpoints(dir);
  const std::string last_good = saved.empty() ? "No checkpoint had been saved yet"
                                              : cat("The last good checkpoint, ", checkpoint_model_path(dir, saved.back()),
                                                    " (step ", saved.back(), "), is intact");
  throw Error(cat(what, "; stopped without saving. ", last_good, ": lower optim.lr or raise optim.warmup_steps",
                  saved.empty() ? "" : ", then --resume"));
}

}  // namespace t6
