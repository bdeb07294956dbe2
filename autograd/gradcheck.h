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

  // What the check could resolve. A derivative n passes with any error up to atol + rtol·|n|: from
  // |n| = atol/rtol (the `resolution`) up that is at most 2·rtol·|n|, but below it the check holds n
  // only to atol, and a small derivative can be wrong by a large factor and pass. A derivative that is
  // exactly 0 is held to atol alone. So a check proves relative accuracy only for the derivatives at or
  // above the resolution: below_resolution counts the others, and least_resolved_input names the input
  // with the largest share of its derivatives below it (least_resolved_share, from 0 to 1).
  double resolution = 0.0;
  int64_t below_resolution = 0;
  int least_resolved_input = -1;
  double least_resolved_share = 0.0;
  double smallest_magnitude = 0.0;  // the smallest |numeric| derivative checked

  std::string summary() const;  // one line for humans
};

// A scalar loss for checking a model: Σ_i w_i · cross_entropy(logits at i, targets[i]) over the targets
// that are not −1, one w_i per target (weights has targets.numel() entries). The model's own loss, the
// mean cross-entropy, is one number, so a check's random upstream is one factor and every target's
// gradient is weighted alike; random w_i give each target's path its own factor. Each term calls the
// cross_entropy op itself (on logits with every other target ignored), so its backward is checked too.
Tensor weighted_cross_entropy(const Tensor& logits, const Tensor& targets, const std::vector<double>& weights);

// Checks the gradient of f with respect to every input that is a float64 tensor requiring grad
// (inputs that do not require grad, such as int32 ids, are held fixed). f must be deterministic.
// Inputs are restored exactly afterwards; their .grad is left untouched.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& options = {});

}  // namespace t6
