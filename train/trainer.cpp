#include "train/trainer.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/backend.h"
#include "train/adamw.h"
#include "train/atomic_file.h"
#include "train/batch_loader.h"
#include "train/evaluate.h"
#include "train/lr_schedule.h"
#include "train/model_checkpoint.h"
#include "train/svg_plot.h"
#include "train/training_state.h"

namespace t6 {

namespace fs = std::filesystem;

namespace {

// Ctrl-C asks the loop to stop after the current step; a second Ctrl-C kills as usual.
std::atomic<bool> stop_requested{false};
extern "C" void request_stop(int) {
  stop_requested = true;
  std::signal(SIGINT, SIG_DFL);
}

std::string clock_text(double seconds) {
  const auto s = static_cast<long long>(std::max(0.0, seconds));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

// metrics.jsonl keeps one JSON object per line; on resume, lines past the resumed step are dropped
// so the file reads as one uninterrupted run.
void truncate_metrics(const std::string& path, int64_t last_step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("step") && j["step"].get<int64_t>() <= last_step) kept += line + "\n";
  }
  write_file_atomically(path, kept);
}

// Reads back the train and val losses of metrics.jsonl for the plot.
void read_series(const std::string& path, LossSeries& train, LossSeries& val) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("step")) continue;
    if (j.contains("loss")) train.emplace_back(j["step"].get<int64_t>(), j["loss"].get<double>());
    if (j.contains("val_loss")) val.emplace_back(j["step"].get<int64_t>(), j["val_loss"].get<double>());
  }
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
  T6_CHECK(t.dtype != "bf16", "train.dtype \"bf16\" is not available yet in this build; use \"fp32\" or \"tf32\"");

  // Data first: a missing or malformed shard should fail before any model work.
  BatchLoader train_data(config.data.train, t.batch_size, t.seq_len, config.model.vocab_size, config.data.shuffle, t.seed);
  std::unique_ptr<BatchLoader> val_data;
  if (!config.data.val.empty())
    val_data = std::make_unique<BatchLoader>(config.data.val, t.batch_size, t.seq_len, config.model.vocab_size, false, t.seed);

  T6Model model(config.model);
  if (!t.init_from.empty()) load_model_weights(model, SafetensorsFile::open(t.init_from));
  model.to(device);
  AdamW optimizer(model.parameters(), config.optim);

  fs::create_directories(dir);
  const std::string metrics_path = (fs::path(dir) / "metrics.jsonl").string();
  int64_t start_step = 0;
  if (resume) {
    const std::vector<int64_t> steps = list_checkpoints(dir);
    T6_CHECK(!steps.empty(), dir, ": no checkpoint to resume from; run without --resume to start training");
    const TrainingProgress p = load_checkpoint(dir, steps.back(), model, optimizer);
    nlohmann::json saved = p.config, now = config.to_json();
    saved["train"].erase("steps"), now["train"].erase("steps");  // extending a run is allowed
    T6_CHECK(saved == now, dir, ": the checkpoint at step ", p.step, " was written with a different config; resume "
             "with the same config (only train.steps may change) or use a new out_dir");
    train_data.restore(p.data_state);
    start_step = p.step;
    truncate_metrics(metrics_path, start_step);
    err << "resumed from " << checkpoint_model_path(dir, start_step) << " at step " << start_step << "\n";
  } else {
    T6_CHECK(list_checkpoints(dir).empty(), dir, ": already holds checkpoints; pass --resume to continue that run, "
             "or choose another train.out_dir");
    write_file_atomically(metrics_path, "");
  }
  write_file_atomically((fs::path(dir) / "config.json").string(), config.to_json().dump(2) + "\n");
  std::ofstream metrics(metrics_path, std::ios::app);

  err << "model: " << model.parameter_count() << " parameters, attention " << config.model.attention << ", on "
      << backend(device).describe() << "\n";
  const int64_t tokens_per_step = t.batch_size * t.seq_len * t.grad_accum;
  stop_requested = false;
  std::signal(SIGINT, request_stop);
  const bool live = isatty(fileno(stderr));

  auto save = [&](int64_t step) {
    save_checkpoint(dir, model, optimizer, {step, train_data.state(), config.to_json()}, config.data.tokenizer);
    prune_checkpoints(dir, t.keep_checkpoints);
  };
  auto run_eval = [&](int64_t step) -> double {
    if (!val_data) return std::nan("");
    const double loss = evaluate(model, *val_data, t.eval_batches).mean_loss;
    metrics << nlohmann::json{{"step", step}, {"val_loss", loss}}.dump() << "\n" << std::flush;
    LossSeries train_series, val_series;
    read_series(metrics_path, train_series, val_series);
    write_loss_svg((fs::path(dir) / "loss.svg").string(), train_series, val_series, "T6 training loss");
    return loss;
  };

  TrainResult result;
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
      T6_CHECK(std::isfinite(value), "the training loss became ", value, " at step ", step,
               " (micro-batch ", micro, "); stopped without saving. The last good checkpoint in ", dir,
               " is intact: lower optim.lr or raise optim.warmup_steps, then --resume");
      loss_sum += value;
      // The accumulated gradient is the mean over micro-batches.
      scale(loss, 1.0 / static_cast<double>(t.grad_accum)).backward();
    }
    const double grad_norm = optimizer.step(lr);
    const double step_loss = loss_sum / static_cast<double>(t.grad_accum);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
    const double tokens_per_s = static_cast<double>(tokens_per_step) / seconds;
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
    if (step % t.save_every == 0 || last) save(step);
    if (stop_requested) {
      if (step % t.save_every != 0 && !last) save(step);
      result.interrupted = true;
      err << "\ninterrupted: saved step " << step << " to " << checkpoint_model_path(dir, step)
          << "; continue with --resume\n";
      break;
    }
  }
  std::signal(SIGINT, SIG_DFL);
  if (live) err << "\n";
  return result;
}

}  // namespace t6
