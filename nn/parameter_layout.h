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

// Model FLOPs of a training step (forward and backward) per token at sequence length seq_len, what
// model FLOP utilisation (MFU) counts: 6N for the N parameters' products (2 forward, 4 backward; the
// tied head counted once, with the embedding) plus 12·L·H·dh·T for attention's scores and weighted
// values, counted over all T keys as PaLM (arXiv 2204.02311, appendix B) counts them.
double training_flops_per_token(const ModelConfig& config, int64_t seq_len);

}  // namespace t6
