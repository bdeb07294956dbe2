// What an experiment's runs have done so far, read back from their folders (metrics.jsonl, checkpoints,
// wall_time.json), and the two files that show it: results.md (one table row per run) and curves.svg
// (validation loss against training tokens, one labelled line per run). Both are rewritten after every
// run and after an interruption, so a partial experiment shows what it has.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "train/experiment_config.h"

namespace t6 {

struct RunOutcome {
  std::string name;
  int64_t steps_done = 0;           // the newest checkpoint's step; 0 before the first
  bool finished = false;            // steps_done ≥ train.steps
  std::vector<std::pair<int64_t, double>> val_losses;  // (step, validation loss), up to steps_done
  std::optional<double> tokens_per_s;  // median over the steps logged
  double wall_seconds = 0.0;        // of every session that trained it, evaluations and saves included
};

// The run's state on disk. A run whose folder does not exist yet has done nothing.
RunOutcome read_run_outcome(const ExperimentRun& run);

// The wall time recorded for a run, and recording it (out_dir/wall_time.json, written atomically).
double recorded_wall_seconds(const ExperimentRun& run);
void record_wall_seconds(const ExperimentRun& run, double seconds);

// Bytes of text per token of the base's validation data: 1 for the byte tokenizer, else from the
// prepare.json beside the shards (t6 prepare records each split's bytes); none when unknown.
std::optional<double> bytes_per_token(const TrainConfig& config);

// results.md's text: the setting, then the table (run, attention, heads, parameters, KV cache per token
// per layer, steps, tokens, final validation loss, bits per token and per byte, tokens/s, wall time).
std::string results_markdown(const ExperimentConfig& e, const std::vector<RunOutcome>& outcomes);
// Writes out_dir/results.md and out_dir/curves.svg; returns the text of results.md.
std::string write_experiment_report(const ExperimentConfig& e, const std::vector<RunOutcome>& outcomes);

}  // namespace t6
