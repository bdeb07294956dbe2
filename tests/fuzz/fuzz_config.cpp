// Fuzz target: a training config file, read, parsed and validated as `t6 train --config` does, and
// written back (a config that was accepted must survive its own round trip).
#include "fuzz_target.h"
#include "train/train_config.h"

namespace t6::fuzz {

int config(const uint8_t* data, size_t size) {
  const std::string path = input_file("config.json", {reinterpret_cast<const char*>(data), size});
  return refuse_or_accept([&] {
    const TrainConfig c = TrainConfig::from_json(read_json_file(path), path);
    if (TrainConfig::from_json(c.to_json(), "round trip").to_json() != c.to_json()) __builtin_trap();
  });
}

}  // namespace t6::fuzz

T6_FUZZ_TARGET(config)
