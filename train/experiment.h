// `t6 experiment`: trains an experiment's runs (train/experiment_config.h) one after another with the
// one Trainer, then writes results.md and curves.svg (train/experiment_report.h) into its out_dir.
//
// out_dir/experiment.json records the resolved runs. With resume, a run that reached train.steps is
// skipped, an interrupted one continues from its newest checkpoint (the Trainer's --resume, so it goes on
// exactly as if never stopped), and the rest start; a run whose config differs from the one recorded
// (in a key a resumed run must keep) is refused. Without resume, an out_dir that already holds an
// experiment is refused. Ctrl-C or SIGTERM saves the current run's step and stops the experiment.
#pragma once
#include <ostream>

#include "train/experiment_config.h"

namespace t6 {

// Returns 0 when every run is done, else the signal that stopped it (SIGINT or SIGTERM). Progress goes
// to `err`; each run's validation losses and the final table to `out`. Throws t6::Error on bad input.
int run_experiment(const ExperimentConfig& experiment, bool resume, std::ostream& out, std::ostream& err);

}  // namespace t6
