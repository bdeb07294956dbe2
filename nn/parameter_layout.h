// The names and shapes of a model's parameters from its config alone, with nothing allocated: what a
// checkpoint of it holds and what `t6 info` counts. They are read off a T6Model built shapes-only, so
// they are the modules' own declarations, never a second list to keep in step.
#pragma once
#include <vector>

#include "nn/model_config.h"
#include "nn/module.h"

namespace t6 {

std::vector<ParameterSpec> parameter_layout(const ModelConfig& config);  // in T6Model's registration order
int64_t parameter_total(const ModelConfig& config);

}  // namespace t6
