#include "train/experiment.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "nn/parameter_layout.h"
#include "train/experiment_report.h"
#include "train/io/atomic_file.h"
#include "train/trainer.h"

namespace t6 {

namespace fs = std::filesystem;

namespace {

// A resumed experiment must be the one that was started: every run it recorded that is still in the
// config keeps every key that a resumed run must keep (train.steps may grow, runs may be added).
void check_against_record(const ExperimentConfig& e, const std::string& path) {
  const nlohmann::json saved = read_json_file(path);
  T6_CHECK(saved.is_object() && saved.contains("runs") && saved["runs"].is_array(), path,
           ": not an experiment record (no \"runs\" list); remove it, or choose another out_dir");
  for (const nlohmann::json& recorded : saved["runs"]) {
    if (!recorded.is_object() || !recorded.contains("name") || !recorded.contains("config")) continue;
    for (const ExperimentRun& run : e.runs) {
      if (!recorded["name"].is_string() || recorded["name"].get<std::string>() != run.name) continue;
      std::string changed;
      for (const ConfigChange& c : run.config.changes_since(recorded["config"]))
        if (c.on_resume != OnResume::MayChange)
          changed += cat(changed.empty() ? "" : ", ", c.key, " ", c.old_value.dump(), " → ", c.new_value.dump());
      T6_CHECK(changed.empty(), e.out_dir, ": run \"", run.name, "\" was started with a different config (", changed,
               "); resume with the experiment config it was started with, or choose another out_dir");
    }
  }
}

int64_t steps_left(const ExperimentRun& run, const RunOutcome& o) {
  return std::max<int64_t>(0, run.config.train.steps - o.steps_done);
}

std::string describe(const ExperimentRun& run) {
  const ModelConfig& m = run.config.model;
  return cat(m.attention_name(), ", ", m.n_head, " heads", m.attention == AttentionKind::GQA ? cat(" in ", m.n_kv_head, " groups") : "",
             " of ", m.head_dim, ", ", parameter_total(m), " parameters", run.matched ? " (matched)" : "");
}

}  // namespace

int run_experiment(const ExperimentConfig& e, bool resume, std::ostream& out, std::ostream& err) {
  std::error_code error;
  fs::create_directories(e.out_dir, error);
  T6_CHECK(!error, "out_dir \"", e.out_dir, "\": cannot create the directory: ", error.message());
  const std::string record = (fs::path(e.out_dir) / "experiment.json").string();
  if (fs::exists(record)) {
    T6_CHECK(resume, e.out_dir, ": already holds an experiment; pass --resume to continue it (finished runs are kept), "
             "or choose another out_dir");
    check_against_record(e, record);
  }
  write_file_atomically(record, e.to_json().dump(2) + "\n");

  const size_t n = e.runs.size();
  std::vector<RunOutcome> outcomes;
  for (const ExperimentRun& run : e.runs) outcomes.push_back(read_run_outcome(run));
  err << "experiment: " << n << " runs in " << e.out_dir << "\n";
  for (size_t i = 0; i < n; ++i)
    err << "  " << i + 1 << ". " << e.runs[i].name << ": " << describe(e.runs[i])
        << (outcomes[i].finished ? ", finished" : outcomes[i].steps_done > 0 ? cat(", at step ", outcomes[i].steps_done) : "")
        << "\n";

  for (size_t i = 0; i < n; ++i) {
    const ExperimentRun& run = e.runs[i];
    const std::string label = cat("run ", i + 1, "/", n, " ", run.name);
    if (outcomes[i].finished) {
      err << label << ": finished earlier (step " << outcomes[i].steps_done << "); skipped\n";
      continue;
    }
    const bool resuming = resume && outcomes[i].steps_done > 0;
    int64_t steps_after = 0;
    for (size_t j = i + 1; j < n; ++j) steps_after += steps_left(e.runs[j], outcomes[j]);
    err << "\n== " << label << ": " << describe(run)
        << (resuming ? cat(", resuming from step ", outcomes[i].steps_done) : "") << " ==\n";
    const double before = resuming ? recorded_wall_seconds(run) : 0.0;
    const auto started = std::chrono::steady_clock::now();
    auto record_time = [&] {
      record_wall_seconds(run, before + std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    };
    TrainResult result;
    try {
      Trainer trainer(run.config, resuming, out, err);
      trainer.set_progress_scope({label, steps_after});
      result = trainer.run();
    } catch (const Error&) {
      if (fs::is_directory(run.config.train.out_dir)) record_time();
      throw;
    }
    record_time();
    outcomes[i] = read_run_outcome(run);
    write_experiment_report(e, outcomes);
    if (result.stop_signal != 0) {
      err << "experiment interrupted in " << label << " at step " << outcomes[i].steps_done
          << "; continue with the same command and --resume (finished runs are kept)\n";
      return result.stop_signal;
    }
  }
  out << write_experiment_report(e, outcomes);
  err << "wrote " << (fs::path(e.out_dir) / "results.md").string() << " and "
      << (fs::path(e.out_dir) / "curves.svg").string() << "\n";
  return 0;
}

}  // namespace t6
