// The names and shapes of a model's parameters, derived from its config alone (no allocation): what a
// checkpoint must contain, what `t6 info` counts, and what T6Model registers (a test checks they agree).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/shape.h"
#include "nn/model_config.h"

namespace t6 {

struct ParameterSpec {
  std::string name;  // the spec's state-dict name
  Shape shape;       // [out, in] for linear layers
};

std::vector<ParameterSpec> parameter_layout(const ModelConfig& config);
int64_t parameter_total(const ModelConfig& config);

}  // namespace t6
