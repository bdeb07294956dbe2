#include "train/cli/config_from_args.h"

namespace t6 {

TrainConfig config_from_args(const ParsedArgs& a) {
  nlohmann::json j = read_json_file(a.get("--config"));
  for (const std::string& assignment : a.all("--set")) apply_override(j, assignment);
  if (a.has("--device")) apply_override(j, "train.device=\"" + a.get("--device") + "\"");
  return TrainConfig::from_json(j, a.get("--config"));
}

}  // namespace t6
