// Fuzz target: the command-line parser. The input is a list of arguments separated by NUL bytes,
// parsed against the flags of `t6 train` and `t6 eval`, with every typed read a command makes and the
// --set overrides applied to a config.
#include "fuzz_target.h"
#include "train/cli/cli_args.h"
#include "train/train_config.h"

namespace t6::fuzz {

int command_line(const uint8_t* data, size_t size) {
  std::vector<std::string> args(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == '\0') args.emplace_back();
    else args.back() += static_cast<char>(data[i]);
  }
  return refuse_or_accept([&] {
    const ParsedArgs a("train", args,
                       {{"--config"}, {"--set", true, true}, {"--device"}, {"--resume", false}, {"--batches"},
                        {"--top-p"}, {"--input", true, true}});
    (void)a.get_int("--batches", 0);
    (void)a.get_double("--top-p", 1.0);
    nlohmann::json config = nlohmann::json::object();
    for (const std::string& assignment : a.all("--set")) apply_override(config, assignment);
    (void)TrainConfig::from_json(config, "--set");
  });
}

}  // namespace t6::fuzz

T6_FUZZ_TARGET(command_line)
