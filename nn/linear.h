// A linear layer without bias: y = x · Wᵀ, W of shape [out, in] (PyTorch's layout).
#pragma once
#include <cmath>

#include "autograd/ops.h"
#include "core/random.h"
#include "nn/module.h"

namespace t6 {

class Linear : public Module {
 public:
  // Weight initialised uniform(−bound, bound), drawn from `gen` row by row; bound 0 gives zeros
  // (and draws nothing).
  Linear(int64_t in_features, int64_t out_features, double bound, Generator& gen)
      : weight(register_parameter("weight", bound == 0.0 ? zeros({out_features, in_features})
                                                         : uniform({out_features, in_features}, -bound, bound, gen))) {}

  Tensor forward(const Tensor& x) const { return matmul(x, weight, false, true); }  // (…,in) → (…,out)

  Tensor weight;  // (out, in)
};

// The Xavier/Glorot uniform bound sqrt(6 / (fan_in + fan_out)).
inline double xavier_bound(int64_t fan_in, int64_t fan_out) {
  return std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
}

}  // namespace t6
