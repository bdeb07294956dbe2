// The SwiGLU feed-forward block: MLP(x) = c_proj(silu(c_fc1 x) ⊙ c_fc2 x), hidden width F = floor(8d/3).
#pragma once
#include "autograd/mixed_precision.h"
#include "nn/linear.h"
#include "nn/model_config.h"

namespace t6 {

class MLP : public Module {
 public:
  MLP(const ModelConfig& c, const ParameterInit& init)
      : c_fc1(register_module("c_fc1", std::make_unique<Linear>(c.n_embd, c.mlp_hidden(), input_bound(c), init))),
        c_fc2(register_module("c_fc2", std::make_unique<Linear>(c.n_embd, c.mlp_hidden(), input_bound(c), init))),
        c_proj(register_module("c_proj", std::make_unique<Linear>(c.mlp_hidden(), c.n_embd, 0.0, init))) {}

  Tensor forward(const Tensor& x) const {  // (B,T,d)
    const Tensor gate = c_fc1.forward(x), up = c_fc2.forward(x);  // (B,T,F)
    // c_proj is the gate's only reader: it gets the dtype c_proj multiplies in (bfloat16 under mixed precision)
    return c_proj.forward(swiglu(gate, up, product_input_dtype(gate)));  // (B,T,F) → (B,T,d)
  }

  Linear& c_fc1;   // (F, d)
  Linear& c_fc2;   // (F, d)
  Linear& c_proj;  // (d, F), zeros at init

 private:
  static double input_bound(const ModelConfig& c) { return 1.0 / std::sqrt(static_cast<double>(c.n_embd)); }
};

}  // namespace t6
