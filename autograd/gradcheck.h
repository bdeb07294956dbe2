// Gradient checking: compares the gradients autograd computes with central finite differences, in
// float64. Usable on any function of tensors, including a whole model.
//
//   auto f = [](const std::vector<Tensor>& in) { return t6::silu(in[0]) * in[1]; };
//   GradcheckResult r = gradcheck(f, {x, w});   // x, w: float64 CPU tensors
//   CHECK(r.passed);                            // r.summary() explains the worst element
//
// The function's output y (any shape) is contracted with a fixed random upstream gradient g, so the
// check differentiates L = Σ g ⊙ y. A random g (not a plain sum) catches errors that a sum hides, such
// as a softmax backward that drops the Σ_j gy_j y_j term (which vanishes when gy is all ones).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace t6 {

struct GradcheckOptions {
  double eps = 1e-6;   // finite-difference step
  double atol = 1e-5;  // an element passes when |analytic − numeric| ≤ atol + rtol·|numeric|
  double rtol = 1e-3;
  // Inputs with at most this many elements are checked element by element; larger ones along
  // `directions` random unit directions v, comparing ⟨grad, v⟩ with (L(x+εv) − L(x−εv)) / 2ε.
  int64_t max_elements_per_input = 4096;
  int directions = 24;
  uint64_t seed = 1234;  // upstream gradient and directions
};

struct GradcheckResult {
  bool passed = true;
  double max_abs_error = 0.0;  // over every checked derivative
  double max_rel_error = 0.0;  // |a − n| / max(|n|, atol)
  int worst_input = -1;        // the derivative furthest outside its tolerance (or closest to it)
  int64_t worst_element = -1;  // element index, or the direction number in directional mode
  bool worst_is_direction = false;
  double worst_analytic = 0.0, worst_numeric = 0.0;
  int64_t derivatives_checked = 0;
  std::string summary() const;  // one line for humans
};

// Checks the gradient of f with respect to every input that is a float64 tensor requiring grad
// (inputs that do not require grad, such as int32 ids, are held fixed). f must be deterministic.
// Inputs are restored exactly afterwards; their .grad is left untouched.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& options = {});

}  // namespace t6
