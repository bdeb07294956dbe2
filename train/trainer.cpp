#include "train/trainer.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include "autograd/mixed_precision.h"
#include "core/backend.h"
#include "nn/generate.h"
#include "train/adamw.h"
#include "train/atomic_file.h"
#include "train/batch_loader.h"
#include "train/evaluate.h"
#include "train/lr_schedule.h"
#include "train/model_checkpoint.h"
#include "train/svg_plot.h"
#include "train/tokenizer.h"
#include "train/training_state.h"

namespace t6 {

namespace fs = std::filesystem;

namespace {

std::atomic<bool> stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the SIGINT handler needs a lock-free flag");
extern "C" void request_stop(int) { stop_requested = true; }

// While alive, the first Ctrl-C only asks the loop to stop after the current step (which then saves);
// SA_RESETHAND makes a second one kill as usual. The previous handler comes back however training
// ends, an exception included.
class StopOnCtrlC {
 public:
  StopOnCtrlC() {
    stop_requested = false;
    struct sigaction action {};
    action.sa_handler = request_stop;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND | SA_RESTART;
    sigaction(SIGINT, &action, &previous_);
  }
  ~StopOnCtrlC() { sigaction(SIGINT, &previous_, nullptr); }
  StopOnCtrlC(const StopOnCtrlC&) = delete;
  StopOnCtrlC& operator=(const StopOnCtrlC&) = delete;
  bool requested() const { return stop_requested; }

 private:
  struct sigaction previous_ {};
};

std::string clock_text(double seconds) {
  const auto s = static_cast<long long>(std::max(0.0, seconds));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

// The bookkeeping keys that may differ between a checkpoint and the run resuming it. The optimizer's
// settings may differ too (a deliberate choice, e.g. a lower lr after a divergence; it is noted).
// Every other key decides what the run computes, and must match.
const std::set<std::string> kFreeOnResume = {"/data/val",          "/train/steps",      "/train/eval_every",
                                             "/train/eval_batches", "/train/save_every", "/train/keep_checkpoints",
                                             "/train/sample_every", "/train/init_from", "/train/out_dir",
                                             "/train/device",      "/train/dtype",      "/train/threads"};

// "key old → new" for every key whose value differs, among the keys `select` accepts.
template <class Select>
std::string changed_keys(const nlohmann::json& saved, const nlohmann::json& now, Select select) {
  const nlohmann::json a = saved.flatten(), b = now.flatten();
  std::set<std::string> keys;
  for (const auto& [key, value] : a.items()) keys.insert(key);
  for (const auto& [key, value] : b.items()) keys.insert(key);
  std::string text;
  for (const std::string& key : keys) {
    if (!select(key)) continue;
    const nlohmann::json old_value = a.contains(key) ? a[key] : nlohmann::json();
    const nlohmann::json new_value = b.contains(key) ? b[key] : nlohmann::json();
    if (old_value == new_value) continue;
    std::string name = key.substr(1);
    std::replace(name.begin(), name.end(), '/', '.');
    text += cat(text.empty() ? "" : ", ", name, " ", old_value.dump(), " → ", new_value.dump());
  }
  return text;
}

// metrics.jsonl keeps one JSON object per line; on resume, lines past the resumed step are dropped
// so the file reads as one uninterrupted run.
void truncate_metrics(const std::string& path, int64_t last_step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() <= last_step)
      kept += line + "\n";
  }
  write_file_atomically(path, kept);
}

// Reads back the train and val losses of metrics.jsonl for the plot.
void read_series(const std::string& path, LossSeries& train, LossSeries& val) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer()) continue;
    const int64_t step = j["step"].get<int64_t>();
    if (j.contains("loss") && j["loss"].is_number()) train.emplace_back(step, j["loss"].get<double>());
    if (j.contains("val_loss") && j["val_loss"].is_number()) val.emplace_back(step, j["val_loss"].get<double>());
  }
}

// A short text from the model, to watch it learn: sampled (seeded, so runs stay reproducible) after the
// tokenizer's end-of-text token, or after a newline when it has none.
std::string sample_text(const T6Model& model, const Tokenizer& tokenizer, uint64_t seed) {
  const std::optional<int32_t> eot = tokenizer.end_of_text();
  GenerationOptions options;
  options.max_new_tokens = 64;
  options.top_k = 40;
  options.seed = seed;
  options.stop_token = eot;
  options.vocab_limit = std::min<int64_t>(tokenizer.vocab_size(), model.config.vocab_size);
  const std::vector<int32_t> prompt = eot ? std::vector<int32_t>{*eot} : tokenizer.encode("\n");
  return tokenizer.decode(generate(model, {prompt}, options).tokens[0]);
}

}  // namespace

TrainResult train_model(const TrainConfig& config, bool resume, std::ostream& out, std::ostream& err) {
  const TrainSection& t = config.train;
  const std::string& dir = t.out_dir;
  if (t.threads > 0) set_cpu_threads(static_cast<int>(t.threads));
  const Device device = parse_device(t.device);
  T6_CHECK(device == Device::CPU || device_available(device), "train.device \"cuda\": ",
           "no usable CUDA GPU (or this t6 was built without CUDA); use \"cpu\"");
  backend(device).allow_tf32(t.dtype == "tf32");
  // bf16 mixed precision for the whole run: every matmul (training, evaluation, samples) multiplies
  // bfloat16 copies with float32 accumulation; weights, gradients and AdamW state stay float32.
  const Bf16MatmulGuard bf16(t.dtype == "bf16");

  // Data first: a missing or malformed shard should fail before any model work.
  BatchLoader train_data(config.data.train, t.batch_size, t.seq_len, config.model.vocab_size, config.data.shuffle, t.seed);
  std::unique_ptr<BatchLoader> val_data;
  if (!config.data.val.empty())
    val_data = std::make_unique<BatchLoader>(config.data.val, t.batch_size, t.seq_len, config.model.vocab_size, false, t.seed);
  std::unique_ptr<Tokenizer> tokenizer;
  if (t.sample_every > 0) {
    try {
      tokenizer = make_tokenizer(config.data.tokenizer);
    } catch (const Error& e) {
      err << "note: no samples during training: " << e.what() << "\n";
    }
  }

  T6Model model(config.model);
  if (!t.init_from.empty() && !resume) load_model_weights(model, SafetensorsFile::open(t.init_from));
  model.to(device);
  const std::vector<Tensor> params = model.parameters();
  AdamW optimizer(params, config.optim);

  const std::string metrics_path = (fs::path(dir) / "metrics.jsonl").string();
  int64_t start_step = 0;
  if (resume) {
    const std::vector<int64_t> steps = list_checkpoints(dir);
    T6_CHECK(!steps.empty(), dir, ": no checkpoint to resume from; run without --resume to start training");
    const TrainingProgress p = load_checkpoint(dir, steps.back(), model, optimizer);
    const nlohmann::json now = config.to_json();
    auto is_optim = [](const std::string& key) { return key.rfind("/optim/", 0) == 0; };
    auto must_match = [&](const std::string& key) { return !is_optim(key) && !kFreeOnResume.count(key); };
    const std::string fixed = changed_keys(p.config, now, must_match);
    T6_CHECK(fixed.empty(), dir, ": the checkpoint at step ", p.step, " was written with a different config (", fixed,
             "); resume with the config it was trained with, or start a new run in another out_dir");
    const std::string optim = changed_keys(p.config, now, is_optim);
    if (!optim.empty()) err << "note: resuming with changed optimizer settings (" << optim << ")\n";
    T6_CHECK(t.steps > p.step, dir, ": the run already reached step ", p.step, " and train.steps is ", t.steps,
             "; raise train.steps (e.g. --set train.steps=", p.step + t.steps, ") to train further");
    train_data.restore(p.data_state);
    start_step = p.step;
    truncate_metrics(metrics_path, start_step);
    err << "resumed from " << checkpoint_model_path(dir, start_step) << " at step " << start_step << "\n";
  } else {
    T6_CHECK(list_checkpoints(dir).empty(), dir, ": already holds checkpoints; pass --resume to continue that run, "
             "or choose another train.out_dir");
    std::error_code error;
    fs::create_directories(dir, error);
    T6_CHECK(!error, "train.out_dir \"", dir, "\": cannot create the directory: ", error.message());
    write_file_atomically(metrics_path, "");
  }
  write_file_atomically((fs::path(dir) / "config.json").string(), config.to_json().dump(2) + "\n");
  std::ofstream metrics(metrics_path, std::ios::app);
  T6_CHECK(metrics.good(), metrics_path, ": cannot open for appending");

  err << "model: " << model.parameter_count() << " parameters, attention " << config.model.attention << ", on "
      << backend(device).describe() << "\n";
  const int64_t tokens_per_step = t.batch_size * t.seq_len * t.grad_accum;
  const bool live = isatty(fileno(stderr));

  // A non-finite loss, gradient or weight stops the run before anything is saved, so the newest
  // checkpoint on disk is always a good one.
  auto stop_non_finite = [&](const std::string& what) {
    const std::vector<int64_t> saved = list_checkpoints(dir);
    const std::string last_good =
        saved.empty() ? "No checkpoint had been saved yet"
                      : cat("The last good checkpoint, ", checkpoint_model_path(dir, saved.back()), " (step ",
                            saved.back(), "), is intact");
    throw Error(cat(what, "; stopped without saving. ", last_good, ": lower optim.lr or raise optim.warmup_steps",
                    saved.empty() ? "" : ", then --resume"));
  };
  auto save = [&](int64_t step) {
    const double sum_of_squares = backend(device).sum_of_squares(params);
    if (!std::isfinite(sum_of_squares)) stop_non_finite(cat("the weights became non-finite at step ", step));
    save_checkpoint(dir, model, optimizer, {step, train_data.state(), config.to_json()}, config.data.tokenizer);
    prune_checkpoints(dir, t.keep_checkpoints);
  };
  auto run_eval = [&](int64_t step) -> double {
    double loss = std::nan("");
    if (val_data) {
      loss = evaluate(model, *val_data, t.eval_batches).mean_loss;
      if (!std::isfinite(loss)) stop_non_finite(cat("the validation loss became ", loss, " after step ", step));
      metrics << nlohmann::json{{"step", step}, {"val_loss", loss}}.dump() << "\n" << std::flush;
    }
    LossSeries train_series, val_series;
    read_series(metrics_path, train_series, val_series);
    write_loss_svg((fs::path(dir) / "loss.svg").string(), train_series, val_series, "T6 training loss");
    return loss;
  };

  TrainResult result;
  result.final_val_loss = std::nan("");
  const StopOnCtrlC ctrl_c;
  const auto started = std::chrono::steady_clock::now();
  std::vector<int32_t> inputs, targets;
  for (int64_t step = start_step + 1; step <= t.steps; ++step) {
    const auto step_start = std::chrono::steady_clock::now();
    const double lr = learning_rate(config.optim, step - 1);
    model.zero_grad();
    double loss_sum = 0.0;
    for (int64_t micro = 0; micro < t.grad_accum; ++micro) {
      train_data.next_batch(inputs, targets);
      const Tensor x = from_ints(inputs, {t.batch_size, t.seq_len}), y = from_ints(targets, {t.batch_size, t.seq_len});
      const Tensor loss = model.forward(x, y).loss;
      const double value = loss.item();
      if (!std::isfinite(value))
        stop_non_finite(cat("the training loss became ", value, " at step ", step, " (micro-batch ", micro, ")"));
      loss_sum += value;
      // Each micro-batch adds 1/grad_accum of its gradient: the update sees the mean over micro-batches.
      scale(loss, 1.0 / static_cast<double>(t.grad_accum)).backward();
    }
    double grad_norm = 0.0;
    try {
      grad_norm = optimizer.step(lr);
    } catch (const Error& e) {
      stop_non_finite(cat("at step ", step, ": ", e.what()));
    }
    const double step_loss = loss_sum / static_cast<double>(t.grad_accum);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
    const double tokens_per_s = seconds > 0 ? static_cast<double>(tokens_per_step) / seconds : 0.0;
    metrics << nlohmann::json{{"step", step}, {"loss", step_loss}, {"lr", lr}, {"grad_norm", grad_norm},
                              {"tokens_per_s", tokens_per_s}}.dump()
            << "\n" << std::flush;
    result.final_train_loss = step_loss;
    result.steps_done = step;

    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const double eta = elapsed / static_cast<double>(step - start_step) * static_cast<double>(t.steps - step);
    char line[256];
    std::snprintf(line, sizeof line, "step %lld/%lld | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s | %s elapsed | ETA %s",
                  static_cast<long long>(step), static_cast<long long>(t.steps), step_loss, lr, grad_norm, tokens_per_s,
                  clock_text(elapsed).c_str(), clock_text(eta).c_str());
    if (live) {
      err << "\r" << line << "\x1b[K" << std::flush;
    } else if (step % 10 == 0 || step == t.steps || step == start_step + 1) {
      err << line << "\n";
    }

    const bool last = step == t.steps;
    if (step % t.eval_every == 0 || last) {
      result.final_val_loss = run_eval(step);
      if (live) err << "\n";
      if (val_data) out << "step " << step << ": val loss " << result.final_val_loss << "\n" << std::flush;
    }
    if (tokenizer && step % t.sample_every == 0) {
      if (live) err << "\n";
      out << "step " << step << " sample: " << sample_text(model, *tokenizer, t.seed) << "\n" << std::flush;
    }
    if (step % t.save_every == 0 || last) save(step);
    if (ctrl_c.requested()) {
      if (step % t.save_every != 0 && !last) save(step);
      result.interrupted = true;
      err << "\ninterrupted: saved step " << step << " to " << checkpoint_model_path(dir, step)
          << "; continue with --resume\n";
      break;
    }
  }
  if (live) err << "\n";
  return result;
}

}  // namespace t6
