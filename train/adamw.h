// AdamW with decoupled weight decay (spec "Training recipe"), applied to every parameter, with
// clipping of the global gradient norm folded into the same kernel launch.
#pragma once
#include <vector>

#include "core/backend.h"
#include "train/train_config.h"

namespace t6 {

// AdamW's state for every parameter, whole: what a checkpoint holds, whatever the number of ranks.
struct OptimizerState {
  std::vector<Tensor> exp_avg, exp_avg_sq;  // in parameter order, shaped like the parameters
  int64_t steps = 0;
};

class AdamW {
 public:
  AdamW(std::vector<Tensor> params, const OptimConfig& config);

  // Global L2 norm of every parameter's gradient (missing gradients count as zero), and its square.
  double gradient_norm() const;
  double gradient_sum_of_squares() const;
  // One update at learning rate `lr`: gradients are first scaled by clip/(norm + 1e-6) when their
  // global norm exceeds optim.grad_clip (> 0), then p ← p − lr·wd·p and the Adam step with bias
  // correction. Returns the norm measured before clipping. A non-finite norm throws t6::Error before
  // anything changes (parameters, moments and the step count stay as they were).
  double step(double lr);
  // The same update with the global norm given: a data-parallel run whose parameters are split across
  // ranks (ZeRO-1) measures the norm over all of them.
  void update(double lr, double norm);

  int64_t steps_taken() const { return steps_; }
  // The optimizer's state for checkpoints: first and second moments in parameter order, and the count.
  const std::vector<Tensor>& exp_avg() const { return exp_avg_; }
  const std::vector<Tensor>& exp_avg_sq() const { return exp_avg_sq_; }
  void set_state(const std::vector<Tensor>& exp_avg, const std::vector<Tensor>& exp_avg_sq, int64_t steps);

 private:
  std::vector<Tensor> params_, exp_avg_, exp_avg_sq_;
  OptimConfig config_;
  int64_t steps_ = 0;
};

}  // namespace t6
