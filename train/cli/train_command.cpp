// `t6 train`: run the training a JSON config describes.
#include <cmath>

#include "core/error.h"

#include "train/cli/cli_args.h"
#include "train/cli/config_from_args.h"
#include "train/cli/commands.h"
#include "train/parallel/world.h"
#include "train/trainer.h"

namespace t6 {

namespace {
const char* const kHelp = R"(usage: t6 train --config FILE.json [--set section.key=value ...] [--device cpu|cuda] [--resume] [--json]

Trains the model described by FILE.json (sections model, data, train, optim; every key has a default;
see configs/ and README.md). --set overrides one key, e.g. --set train.steps=100 --set optim.lr=3e-4.
--device is short for --set train.device=... . --resume continues bit-identically from the newest
checkpoint in train.out_dir. Writes out_dir/step_NNNNNN.safetensors (+ .state.safetensors),
metrics.jsonl, loss.svg and config.json. Ctrl-C or SIGTERM saves a checkpoint and stops (exit status 130 or 143).
Data parallel: mpirun -np N t6 train ... runs N ranks of train.batch_size each (see README.md).
)";
}  // namespace

int run_train_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const ParsedArgs a("train", args,
                     {{"--config"}, {"--set", true, true}, {"--device"}, {"--resume", false}, {"--json", false}, {"--help", false}});
  if (a.has("--help")) {
    out << kHelp;
    return 0;
  }
  T6_CHECK(a.has("--config"), "t6 train needs --config FILE.json (configs/demo.json is a small example)");
  const TrainConfig config = config_from_args(a);
  Communicator* group = join_training_group(config.train.device, config.train.threads);
  Trainer trainer(config, a.has("--resume"), a.has("--json") ? err : out, err, group);
  const TrainResult r = trainer.run();
  if (a.has("--json") && (!group || group->rank() == 0)) {
    out << nlohmann::json{{"steps", r.steps_done},
                          {"final_train_loss", r.final_train_loss},
                          {"final_val_loss", std::isnan(r.final_val_loss) ? nlohmann::json() : nlohmann::json(r.final_val_loss)},
                          {"interrupted", r.stop_signal != 0},
                          {"out_dir", config.train.out_dir}}
               .dump()
        << "\n";
  }
  return r.stop_signal != 0 ? 128 + r.stop_signal : 0;  // the shell's convention: 130 for Ctrl-C, 143 for SIGTERM
}

}  // namespace t6
