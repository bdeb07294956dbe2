// `t6 experiment`: train a list of runs that differ only where the config says and compare them.
#include "core/error.h"
#include "train/cli/cli_args.h"
#include "train/cli/commands.h"
#include "train/experiment.h"
#include "train/train_config.h"

namespace t6 {

namespace {
const char* const kHelp = R"(usage: t6 experiment --config FILE.json [--out-dir DIR] [--set section.key=value ...] [--device cpu|cuda]
                     [--resume]

Trains the runs of an experiment config (configs/experiments/ has two; README.md describes the keys)
one after another, on the same training windows in the same order from the same seed, evaluated on the
same validation windows at the same steps, and writes into its out_dir: NAME/ for each run (metrics.jsonl,
checkpoints, loss.svg), curves.svg (validation loss against training tokens, one line per run) and
results.md (parameters, KV cache per token per layer, final validation loss, bits per token and per
byte, tokens/s, wall time). "match_parameters": true sizes the heads of every run of another attention
to the base model's parameter count (within 1%; t6 info --match shows the sizes).
--out-dir replaces the config's out_dir. --set applies to the base config, so to every run (e.g. --set train.steps=20). --device is short for
--set train.device=... . --resume continues an interrupted experiment: finished runs are kept, the
interrupted one goes on from its newest checkpoint. Ctrl-C or SIGTERM saves the current run and stops
(exit status 130 or 143).
)";
}  // namespace

int run_experiment_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const ParsedArgs a("experiment", args, {{"--config"}, {"--out-dir"}, {"--set", true, true}, {"--device"}, {"--resume", false}, {"--help", false}});
  if (a.has("--help")) {
    out << kHelp;
    return 0;
  }
  T6_CHECK(a.has("--config"), "t6 experiment needs --config FILE.json (configs/experiments/cpu_compare.json is one)");
  std::vector<std::string> overrides = a.all("--set");
  if (a.has("--device")) overrides.push_back("train.device=\"" + a.get("--device") + "\"");
  nlohmann::json j = read_json_file(a.get("--config"));
  if (a.has("--out-dir") && j.is_object()) j["out_dir"] = a.get("--out-dir");
  const ExperimentConfig experiment = ExperimentConfig::from_json(j, a.get("--config"), overrides);
  const int stop_signal = run_experiment(experiment, a.has("--resume"), out, err);
  return stop_signal != 0 ? 128 + stop_signal : 0;  // 130 for Ctrl-C, 143 for SIGTERM
}

}  // namespace t6
