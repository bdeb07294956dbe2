// A linear layer without bias: y = x · Wᵀ, W of shape [out, in] (PyTorch's layout).
#pragma once
#include <cmath>
#include <memory>

#include "autograd/ops.h"
#include "nn/module.h"

namespace t6 {

class Linear : public Module {
 public:
  // Weight initialised uniform(−bound, bound); bound 0 gives zeros.
  Linear(int64_t in_features, int64_t out_features, double bound, const ParameterInit& init)
      : weight(register_parameter("weight", {out_features, in_features}, bound, init)) {}

  Tensor forward(const Tensor& x) const { return matmul(x, weight, false, true); }  // (…,in) → (…,out)

  Tensor weight;  // (out, in)
};

// A Linear layer initialised Xavier/Glorot uniform, bound sqrt(6 / (fan_in + fan_out)): the spec's init
// of every plain projection (c_q, c_k, c_v).
inline std::unique_ptr<Linear> xavier_linear(int64_t in_features, int64_t out_features, const ParameterInit& init) {
  const double bound = std::sqrt(6.0 / static_cast<double>(in_features + out_features));
  return std::make_unique<Linear>(in_features, out_features, bound, init);
}

}  // namespace t6
