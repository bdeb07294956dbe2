#include "train/experiment_report.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "core/backend.h"
#include "core/error.h"
#include "nn/parameter_layout.h"
#include "train/io/atomic_file.h"
#include "train/io/svg_plot.h"
#include "train/training_state.h"

namespace t6 {

namespace fs = std::filesystem;

namespace {

std::string fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::string millions(int64_t n) { return fixed(static_cast<double>(n) / 1e6, 3) + "M"; }

// A token count for reading: 950, 12.3K, 1.23M.
std::string count_text(int64_t n) {
  const auto x = static_cast<double>(n);
  return n < 10'000 ? cat(n) : n < 1'000'000 ? fixed(x / 1e3, 1) + "K" : fixed(x / 1e6, 2) + "M";
}

std::string duration(double seconds) {
  const auto s = static_cast<long long>(std::llround(seconds));
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh %02lldm", s / 3600, s / 60 % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lldm %02llds", s / 60, s % 60);
  }
  return buf;
}

int64_t tokens_per_step(const TrainConfig& c) { return c.train.batch_size * c.train.seq_len * c.train.grad_accum; }

fs::path wall_time_path(const ExperimentRun& run) { return fs::path(run.config.train.out_dir) / "wall_time.json"; }

// The experiment's name: the last part of its out_dir.
std::string experiment_name(const std::string& out_dir) {
  fs::path p = fs::path(out_dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

std::string heads_of(const ModelConfig& m) {
  return cat(m.n_head, " / ", m.kv_heads(), " / ", m.head_dim);
}

}  // namespace

double recorded_wall_seconds(const ExperimentRun& run) {
  std::ifstream in(wall_time_path(run));
  if (!in) return 0.0;
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  return j.is_object() && j.contains("seconds") && j["seconds"].is_number() ? j["seconds"].get<double>() : 0.0;
}

void record_wall_seconds(const ExperimentRun& run, double seconds) {
  write_file_atomically(wall_time_path(run).string(), nlohmann::json{{"seconds", seconds}}.dump() + "\n");
}

RunOutcome read_run_outcome(const ExperimentRun& run) {
  RunOutcome o;
  o.name = run.name;
  const std::string& dir = run.config.train.out_dir;
  const std::vector<int64_t> saved = list_checkpoints(dir);
  o.steps_done = saved.empty() ? 0 : saved.back();
  o.finished = o.steps_done >= run.config.train.steps;
  o.wall_seconds = recorded_wall_seconds(run);
  std::ifstream in(fs::path(dir) / "metrics.jsonl");
  std::vector<double> speeds;
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer()) continue;
    const int64_t step = j["step"].get<int64_t>();
    if (step > o.steps_done) continue;  // past the newest checkpoint: redone when the run resumes
    if (j.contains("val_loss") && j["val_loss"].is_number()) o.val_losses.emplace_back(step, j["val_loss"].get<double>());
    if (j.contains("tokens_per_s") && j["tokens_per_s"].is_number()) speeds.push_back(j["tokens_per_s"].get<double>());
  }
  if (!speeds.empty()) {
    std::sort(speeds.begin(), speeds.end());
    o.tokens_per_s = speeds[speeds.size() / 2];
  }
  return o;
}

std::optional<double> bytes_per_token(const TrainConfig& config) {
  if (config.data.tokenizer == TokenizerKind::Byte) return 1.0;
  std::ifstream in(fs::path(config.data.val).parent_path() / "prepare.json");
  if (!in) return std::nullopt;
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (!j.is_object() || !j.contains("val") || !j["val"].is_object()) return std::nullopt;
  const nlohmann::json& val = j["val"];
  if (!val.contains("text_bytes") || !val.contains("tokens") || !val["text_bytes"].is_number() ||
      !val["tokens"].is_number())
    return std::nullopt;
  const double bytes = val["text_bytes"].get<double>(), tokens = val["tokens"].get<double>();
  if (bytes <= 0 || tokens <= 0) return std::nullopt;
  return bytes / tokens;
}

std::string results_markdown(const ExperimentConfig& e, const std::vector<RunOutcome>& outcomes) {
  const TrainConfig& b = e.base;
  const int64_t step_tokens = tokens_per_step(b);
  const std::optional<double> bytes = bytes_per_token(b);
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));

  std::string md = cat("# Experiment: ", experiment_name(e.out_dir), "\n\n");
  if (!e.description.empty()) md += e.description + "\n\n";
  md += cat("Every run: ", b.train.steps, " steps of ", b.train.batch_size, "×", b.train.seq_len,
            b.train.grad_accum > 1 ? cat("×", b.train.grad_accum) : "", " tokens (", count_text(b.train.steps * step_tokens),
            " tokens), the same training windows of `", b.data.train, "` in the same order (train.seed ", b.train.seed,
            ", shuffle ", b.data.shuffle ? "on" : "off", "), validated on the same ",
            b.train.eval_batches == 0 ? "complete set of windows" : cat(b.train.eval_batches, " windows"), " of `",
            b.data.val, "` every ", b.train.eval_every, " steps; ", b.data.tokenizer == TokenizerKind::Byte ? "byte-level" : "GPT-2 BPE",
            " tokens; ", device_name(b.train.device), ", ", precision_names().name(b.train.dtype), ".");
  if (e.match_parameters)
    md += cat(" Runs of another attention than the base's (", b.model.attention_name(),
              ") take the head counts that bring them within 1% of its parameter count (nn/parameter_matching.h).");
  md += cat("\n\nKV cache: numbers cached per token per layer at inference (TPA: the factors, 2R(H+dh); MHA ",
            "2·H·dh; GQA 2·G·dh; MQA 2·dh). heads: query heads H / key-value heads / head_dim. Written ", date, ".\n\n");

  md += "| run | attention | heads | parameters | vs first | KV cache / token / layer | steps | tokens | final val loss | "
        "bits/token | bits/byte | tokens/s | wall time |\n";
  md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  const int64_t first_parameters = parameter_total(e.runs.front().config.model);
  for (size_t i = 0; i < e.runs.size(); ++i) {
    const ModelConfig& m = e.runs[i].config.model;
    const RunOutcome& o = outcomes[i];
    const int64_t parameters = parameter_total(m);
    const double vs_first = 100.0 * static_cast<double>(parameters - first_parameters) / static_cast<double>(first_parameters);
    std::string loss = "—", bits_token = "—", bits_byte = "—";
    if (!o.val_losses.empty()) {
      const double l = o.val_losses.back().second;
      loss = fixed(l, 4);
      bits_token = fixed(l / std::log(2.0), 4);
      if (bytes) bits_byte = fixed(l / std::log(2.0) / *bytes, 4);
    }
    const std::string steps = o.finished ? cat(o.steps_done) : cat(o.steps_done, " of ", e.runs[i].config.train.steps, " (unfinished)");
    md += cat("| ", o.name, " | ", m.attention_name(), " | ", heads_of(m), " | ", parameters, " (", millions(parameters), ") | ",
              (vs_first >= 0 ? "+" : ""), fixed(vs_first, 2), "% | ", m.kv_cache_numbers_per_token_per_layer(), " | ",
              steps, " | ", count_text(o.steps_done * step_tokens), " | ", loss, " | ", bits_token, " | ", bits_byte, " | ",
              o.tokens_per_s ? fixed(*o.tokens_per_s, 0) : "—", " | ", o.wall_seconds > 0 ? duration(o.wall_seconds) : "—",
              " |\n");
  }
  md += "\nFinal val loss: the mean cross-entropy (nats per token) of the last evaluation. bits/byte: bits/token over ";
  md += bytes ? cat("the validation split's bytes per token (", fixed(*bytes, 3), ").") : "bytes per token, unknown for this data.";
  md += " tokens/s: the median over the steps. Wall time: the sessions that trained the run, evaluations and "
        "checkpoints included.\n\n![validation loss against training tokens](curves.svg)\n";
  return md;
}

std::string write_experiment_report(const ExperimentConfig& e, const std::vector<RunOutcome>& outcomes) {
  const int64_t step_tokens = tokens_per_step(e.base);
  std::vector<NamedSeries> series;
  for (size_t i = 0; i < e.runs.size(); ++i) {
    const ModelConfig& m = e.runs[i].config.model;
    NamedSeries s{cat(outcomes[i].name, " (", m.attention_name(), ", ", millions(parameter_total(m)), ")"), {}};
    for (const auto& [step, loss] : outcomes[i].val_losses) s.points.emplace_back(step * step_tokens, loss);
    series.push_back(std::move(s));
  }
  const std::string name = experiment_name(e.out_dir);
  write_curves_svg((fs::path(e.out_dir) / "curves.svg").string(), series,
                   {cat(name, ": validation loss"), "training tokens", "validation loss (nats per token)"});
  const std::string md = results_markdown(e, outcomes);
  write_file_atomically((fs::path(e.out_dir) / "results.md").string(), md);
  return md;
}

}  // namespace t6
