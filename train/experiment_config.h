// The config of `t6 experiment`: training runs that differ only where the config says, so that their
// validation curves compare attention variants (or any model or optimizer setting) on equal terms.
//
//   {
//     "description": "one line for results.md (optional)",
//     "out_dir": "runs/cpu_compare",
//     "match_parameters": true,
//     "base": { a training config: model, data, train, optim (train.out_dir is the experiment's) },
//     "runs": [ {"name": "tpa", "set": {}},
//               {"name": "mha", "set": {"model.attention": "mha"}}, ... ]
//   }
//
// Every run is the base with its "set" applied. A run may set model and optim keys only, and not
// model.vocab_size or model.block_size: data, train (seed, batch, steps, evaluation) and the token
// windows stay the base's, so every run trains on the same windows in the same order from the same
// seed and is evaluated on the same validation windows at the same steps. With match_parameters, a run
// whose attention differs from the base's takes its n_head, head_dim and n_kv_head from
// match_parameters (nn/parameter_matching.h: within 1% of the base model's parameter count) and may not
// set them itself. Run i trains in out_dir/NAME.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/train_config.h"

namespace t6 {

struct ExperimentRun {
  std::string name;         // a folder name: letters, digits, '-', '_', '.'
  nlohmann::json set;       // the run's own settings, {"model.attention": "mha", ...}
  bool matched = false;     // its heads came from match_parameters
  TrainConfig config;       // the base with `set` (and the matched heads) applied; out_dir = out_dir/name
};

struct ExperimentConfig {
  std::string description;
  std::string out_dir;
  bool match_parameters = false;
  TrainConfig base;  // train.out_dir: out_dir itself (runs use out_dir/NAME)
  std::vector<ExperimentRun> runs;

  // `where` (the file name) prefixes every message; base_overrides ("section.key=value", from --set)
  // apply to the base before the runs are formed. Throws t6::Error naming the problem and the fix.
  static ExperimentConfig from_json(const nlohmann::json& j, const std::string& where,
                                    const std::vector<std::string>& base_overrides = {});
  // The resolved experiment (every run's full config), as written to out_dir/experiment.json.
  nlohmann::json to_json() const;
};

}  // namespace t6
