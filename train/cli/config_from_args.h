// The training config of `t6 train` and `t6 bench train`: --config FILE, then each --set in order,
// then --device (short for --set train.device=...).
#pragma once
#include "train/cli/cli_args.h"
#include "train/train_config.h"

namespace t6 {

TrainConfig config_from_args(const ParsedArgs& args);

}  // namespace t6
