#include "train/adamw.h"

#include <cmath>

namespace t6 {

AdamW::AdamW(std::vector<Tensor> params, const OptimConfig& config) : params_(std::move(params)), config_(config) {
  T6_CHECK(!params_.empty(), "AdamW: no parameters to optimize");
  for (const Tensor& p : params_) {
    T6_CHECK(p.dtype() == DType::F32 && p.is_contiguous(), "AdamW: parameters must be contiguous float32, got ",
             dtype_name(p.dtype()), " ", shape_str(p.shape()));
    exp_avg_.push_back(zeros(p.shape(), DType::F32, p.device()));
    exp_avg_sq_.push_back(zeros(p.shape(), DType::F32, p.device()));
  }
}

double AdamW::gradient_sum_of_squares() const {
  std::vector<Tensor> grads;
  for (const Tensor& p : params_)
    if (p.grad().defined()) grads.push_back(p.grad());
  return grads.empty() ? 0.0 : backend_of(params_[0]).sum_of_squares(grads);
}

double AdamW::gradient_norm() const { return std::sqrt(gradient_sum_of_squares()); }

double AdamW::step(double lr) {
  const double norm = gradient_norm();
  update(lr, norm);
  return norm;
}

void AdamW::update(double lr, double norm) {
  T6_CHECK(std::isfinite(norm), "AdamW: the global gradient norm is ", norm, "; no parameter was updated");
  ++steps_;
  AdamWHyper h;
  h.lr = lr;
  h.beta1 = config_.beta1;
  h.beta2 = config_.beta2;
  h.eps = config_.eps;
  h.weight_decay = config_.weight_decay;
  h.step = steps_;
  h.grad_scale = config_.grad_clip > 0 && norm > config_.grad_clip ? config_.grad_clip / (norm + 1e-6) : 1.0;
  std::vector<AdamWSlot> slots;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    if (!p.grad().defined()) p.set_grad(zeros(p.shape(), p.dtype(), p.device()));  // unused this step: decay only
    slots.push_back({p, p.grad(), exp_avg_[i], exp_avg_sq_[i]});
    p.storage()->bump_version();
  }
  backend_of(params_[0]).adamw_step(slots, h);
}

void AdamW::set_state(const std::vector<Tensor>& exp_avg, const std::vector<Tensor>& exp_avg_sq, int64_t steps) {
  T6_CHECK(exp_avg.size() == params_.size() && exp_avg_sq.size() == params_.size(), "AdamW: state for ", exp_avg.size(),
           " parameters given to an optimizer of ", params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    T6_CHECK(exp_avg[i].shape() == params_[i].shape() && exp_avg_sq[i].shape() == params_[i].shape(),
             "AdamW: state of shape ", shape_str(exp_avg[i].shape()), " for a parameter of shape ",
             shape_str(params_[i].shape()));
    exp_avg_[i].copy_(exp_avg[i]);
    exp_avg_sq_[i].copy_(exp_avg_sq[i]);
  }
  steps_ = steps;
}

}  // namespace t6
