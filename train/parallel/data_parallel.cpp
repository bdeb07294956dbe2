#include "train/parallel/data_parallel.h"

#include <algorithm>
#include <cmath>

namespace t6 {

namespace {
// Elements [begin, begin + length) of a contiguous tensor, as a 1-D view.
Tensor flat_range(const Tensor& t, int64_t begin, int64_t length) {
  return t.as_strided({length}, {1}, t.offset() + begin);
}
}  // namespace

DataParallelAdamW::DataParallelAdamW(std::vector<Tensor> params, const OptimConfig& config, Communicator* group,
                                     int zero_stage)
    : params_(std::move(params)), group_(group), zero_stage_(group ? zero_stage : 0) {
  T6_CHECK(zero_stage == 0 || zero_stage == 1, "train.zero_stage must be 0 or 1, got ", zero_stage);
  if (!group_) {
    adamw_.emplace(params_, config);
    return;
  }
  int64_t total = 0;
  for (const Tensor& p : params_) {
    offsets_.push_back(total);
    total += p.numel();
  }
  const int64_t ranks = group_->size();
  slice_ = (total + ranks - 1) / ranks;
  const Device device = params_.at(0).device();
  flat_ = zeros({zero_stage_ == 1 ? slice_ * ranks : total}, DType::F32, device);
  if (zero_stage_ == 0) {
    adamw_.emplace(params_, config);
    return;
  }
  slice_grad_ = zeros({slice_}, DType::F32, device);
  slice_send_ = zeros({slice_}, DType::F32, device);
  const int64_t first = group_->rank() * slice_, last = first + slice_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const int64_t begin = std::max(first, offsets_[i]), end = std::min(last, offsets_[i] + params_[i].numel());
    if (begin >= end) continue;
    pieces_.push_back({i, begin - offsets_[i], end - begin, begin - first});
    piece_params_.push_back(flat_range(params_[i], begin - offsets_[i], end - begin));
  }
  if (!piece_params_.empty()) adamw_.emplace(piece_params_, config);
}

void DataParallelAdamW::pack_gradients() {
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor part = flat_range(flat_, offsets_[i], params_[i].numel()).view(params_[i].shape());
    if (params_[i].grad().defined()) {
      part.copy_(params_[i].grad());
    } else {
      part.fill_(0.0);  // unused this step: decay only, as AdamW does alone
    }
  }
}

double DataParallelAdamW::step(double lr) {
  if (!group_) return adamw_->step(lr);
  const double ranks = static_cast<double>(group_->size());
  pack_gradients();
  if (zero_stage_ == 0) {
    group_->all_reduce_sum(flat_);
    flat_.scale_(1.0 / ranks);
    // The parameters' gradients become views of the averaged buffer: no copy back.
    for (size_t i = 0; i < params_.size(); ++i)
      params_[i].set_grad(flat_range(flat_, offsets_[i], params_[i].numel()).view(params_[i].shape()));
    return adamw_->step(lr);
  }
  group_->reduce_scatter_sum(flat_, slice_grad_);
  slice_grad_.scale_(1.0 / ranks);
  Tensor squares = from_vector({backend_of(slice_grad_).sum_of_squares({slice_grad_})}, {1}, DType::F64,
                               slice_grad_.device());
  group_->all_reduce_sum(squares);
  const double norm = std::sqrt(squares.item());
  T6_CHECK(std::isfinite(norm), "AdamW: the global gradient norm is ", norm, "; no parameter was updated");
  ++steps_;
  if (adamw_) {
    for (size_t k = 0; k < pieces_.size(); ++k)
      piece_params_[k].set_grad(flat_range(slice_grad_, pieces_[k].at, pieces_[k].length));
    adamw_->update(lr, norm);
  }
  gather_parameters();
  return norm;
}

void DataParallelAdamW::gather_parameters() {
  for (size_t k = 0; k < pieces_.size(); ++k) {
    Tensor to = flat_range(slice_send_, pieces_[k].at, pieces_[k].length);
    to.copy_(piece_params_[k]);
  }
  group_->all_gather(slice_send_, flat_);
  for (size_t i = 0; i < params_.size(); ++i) {
    params_[i].copy_(flat_range(flat_, offsets_[i], params_[i].numel()).view(params_[i].shape()));
  }
}

OptimizerState DataParallelAdamW::state() const {
  OptimizerState s;
  if (zero_stage_ == 0) {
    s.exp_avg = adamw_->exp_avg();
    s.exp_avg_sq = adamw_->exp_avg_sq();
    s.steps = adamw_->steps_taken();
    return s;
  }
  s.steps = steps_;
  const Device device = params_.at(0).device();
  for (auto [moments, out] : {std::pair{&AdamW::exp_avg, &s.exp_avg}, {&AdamW::exp_avg_sq, &s.exp_avg_sq}}) {
    Tensor send = zeros({slice_}, DType::F32, device), whole = empty({flat_.numel()}, DType::F32, device);
    for (size_t k = 0; k < pieces_.size(); ++k) {
      Tensor to = flat_range(send, pieces_[k].at, pieces_[k].length);
      to.copy_(((*adamw_).*moments)()[k]);
    }
    group_->all_gather(send, whole);
    for (size_t i = 0; i < params_.size(); ++i)
      out->push_back(flat_range(whole, offsets_[i], params_[i].numel()).view(params_[i].shape()).clone_data());
  }
  return s;
}

void DataParallelAdamW::set_state(const OptimizerState& s) {
  if (zero_stage_ == 0) {
    adamw_->set_state(s.exp_avg, s.exp_avg_sq, s.steps);
    return;
  }
  T6_CHECK(s.exp_avg.size() == params_.size() && s.exp_avg_sq.size() == params_.size(), "AdamW: state for ",
           s.exp_avg.size(), " parameters given to an optimizer of ", params_.size());
  std::vector<Tensor> m, v;
  for (const Piece& piece : pieces_) {
    const Tensor& whole_m = s.exp_avg[piece.index];
    const Tensor& whole_v = s.exp_avg_sq[piece.index];
    T6_CHECK(whole_m.shape() == params_[piece.index].shape() && whole_v.shape() == params_[piece.index].shape(),
             "AdamW: state of shape ", shape_str(whole_m.shape()), " for a parameter of shape ",
             shape_str(params_[piece.index].shape()));
    m.push_back(flat_range(whole_m.contiguous_data(), piece.begin, piece.length));
    v.push_back(flat_range(whole_v.contiguous_data(), piece.begin, piece.length));
  }
  if (adamw_) adamw_->set_state(m, v, s.steps);
  steps_ = s.steps;
}

}  // namespace t6
