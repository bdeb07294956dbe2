// Token embedding whose matrix doubles as the output head (weight tying, spec: `transformer.wte.weight`
// is also `lm_head.weight`). The one parameter is used twice, so autograd sums both gradients into it.
#pragma once
#include <cmath>

#include "autograd/ops.h"
#include "nn/module.h"

namespace t6 {

class Embedding : public Module {
 public:
  Embedding(int64_t vocab_size, int64_t dim, const ParameterInit& init)
      : weight(register_parameter("weight", {vocab_size, dim}, 1.0 / std::sqrt(static_cast<double>(dim)), init)) {}

  Tensor forward(const Tensor& ids) const { return embedding(weight, ids); }              // (B,T) → (B,T,d)
  Tensor logits(const Tensor& x) const { return matmul(x, weight, false, true); }          // (B,T,d) → (B,T,V)

  Tensor weight;  // (V, d)
};

}  // namespace t6
