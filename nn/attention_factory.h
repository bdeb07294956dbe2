// Which Attention module a block gets for config.attention. The one place that knows every variant, so
// the Attention interface (nn/attention.h) depends on none of them and a block on no particular one.
#pragma once
#include <memory>

#include "nn/attention.h"
#include "nn/model_config.h"
#include "nn/parameter_init.h"

namespace t6 {

std::unique_ptr<Attention> make_attention(const ModelConfig& config, const ParameterInit& init);

}  // namespace t6
