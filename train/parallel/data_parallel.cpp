#include "train/parallel/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace t6 {

namespace {
// Elements [begin, begin + length) of a contiguous tensor, as a 1-D view.
Tensor flat_range(const Tensor& t, int64_t begin, int64_t length) {
  return t.as_strided({length}, {1}, t.offset() + begin);
}
}  // namespace

DataParallelAdamW::DataParallelAdamW(std::vector<Tensor> params, const OptimConfig& config, Communicator* group,
                                     int zero_stage, double bucket_mb)
    : params_(std::move(params)), group_(group), zero_stage_(group ? zero_stage : 0) {
  T6_CHECK(zero_stage == 0 || zero_stage == 1, "train.zero_stage must be 0 or 1, got ", zero_stage);
  T6_CHECK(bucket_mb >= 0, "train.bucket_mb must be ≥ 0, got ", bucket_mb);
  T6_CHECK(!params_.empty(), "DataParallelAdamW: the model has no parameters to train");
  if (!group_) {
    adamw_.emplace(params_, config);
    return;
  }
  make_buckets(bucket_mb);
  for (size_t i = 0; i < params_.size(); ++i) index_of_[params_[i].impl_ptr().get()] = i;
  packed_.assign(params_.size(), false);
  const Device device = params_.at(0).device();
  const Bucket& last = buckets_.back();
  flat_ = zeros({last.begin + last.numel}, DType::F32, device);
  if (zero_stage_ == 0) {
    adamw_.emplace(params_, config);
    return;
  }
  const int64_t slice = last.slice_at + last.numel / group_->size();
  slice_grad_ = zeros({slice}, DType::F32, device);
  slice_send_ = zeros({slice}, DType::F32, device);
  make_pieces();
  if (!piece_params_.empty()) adamw_.emplace(piece_params_, config);
}

// Whole parameters from the last one back, a bucket closing once it holds bucket_mb MiB of float32
// gradients; the buffer holds the buckets in that order (the order backward finishes them in).
void DataParallelAdamW::make_buckets(double bucket_mb) {
  const double bucket_bytes = bucket_mb > 0 ? bucket_mb * 1024 * 1024 : std::numeric_limits<double>::infinity();
  const int64_t ranks = group_->size();
  offsets_.resize(params_.size());
  bucket_of_.resize(params_.size());
  int64_t begin = 0, slice_at = 0;
  for (size_t end = params_.size(); end > 0;) {
    Bucket b{end, end, begin, 0, slice_at, 0};
    double bytes = 0;
    while (b.first > 0 && bytes < bucket_bytes) {
      --b.first;
      bytes += 4.0 * static_cast<double>(params_[b.first].numel());
    }
    for (size_t i = b.first; i < b.end; ++i) {
      offsets_[i] = begin + b.numel;
      bucket_of_[i] = buckets_.size();
      b.numel += params_[i].numel();
    }
    if (zero_stage_ == 1) b.numel = (b.numel + ranks - 1) / ranks * ranks;
    b.unpacked = b.end - b.first;
    begin += b.numel;
    slice_at += b.numel / ranks;
    buckets_.push_back(b);
    end = b.first;
  }
}

void DataParallelAdamW::make_pieces() {
  const int64_t ranks = group_->size();
  for (const Bucket& b : buckets_) {
    const int64_t chunk = b.numel / ranks, first = b.begin + group_->rank() * chunk, last = first + chunk;
    for (size_t i = b.first; i < b.end; ++i) {
      const int64_t begin = std::max(first, offsets_[i]), end = std::min(last, offsets_[i] + params_[i].numel());
      if (begin >= end) continue;
      pieces_.push_back({i, begin - offsets_[i], end - begin, b.slice_at + begin - first});
      piece_params_.push_back(flat_range(params_[i], begin - offsets_[i], end - begin));
    }
  }
}

GradReadyHook DataParallelAdamW::reduce_during_backward() {
  if (!group_ || buckets_.size() == 1) return {};  // one bucket is complete only when backward is
  return [this](const Tensor& leaf) {
    auto found = index_of_.find(leaf.impl_ptr().get());
    if (found != index_of_.end()) pack(found->second);
  };
}

// Copies the gradient of parameter `index` into the flat buffer, and starts its bucket when complete.
void DataParallelAdamW::pack(size_t index) {
  T6_CHECK(!packed_[index], "DataParallelAdamW: parameter ", index, "'s gradient became final twice in one step; "
           "pass reduce_during_backward() to the last backward() before step() only");
  packed_[index] = true;
  const Tensor& p = params_[index];
  Tensor part = flat_range(flat_, offsets_[index], p.numel()).view(p.shape());
  if (p.grad().defined()) {
    part.copy_(p.grad());
  } else {
    part.fill_(0.0);  // unused this step: decay only, as AdamW does alone
  }
  if (--buckets_[bucket_of_[index]].unpacked == 0) start_complete_buckets();
}

// In bucket order, so that every rank starts the same collectives in the same order.
void DataParallelAdamW::start_complete_buckets() {
  for (; next_bucket_ < buckets_.size() && buckets_[next_bucket_].unpacked == 0; ++next_bucket_) {
    const Bucket& b = buckets_[next_bucket_];
    Tensor gradients = flat_range(flat_, b.begin, b.numel);
    if (zero_stage_ == 0) {
      group_->start_all_reduce_sum(gradients);
    } else {
      Tensor chunk = flat_range(slice_grad_, b.slice_at, b.numel / group_->size());
      group_->start_reduce_scatter_sum(gradients, chunk);
    }
  }
}

// Every bucket reduced (summed over the ranks), and the bookkeeping ready for the next step.
void DataParallelAdamW::reduce_gradients() {
  for (size_t i = params_.size(); i-- > 0;)
    if (!packed_[i]) pack(i);  // backward did not report it: not reached, or no hook this step
  group_->wait();
  packed_.assign(params_.size(), false);
  for (Bucket& b : buckets_) b.unpacked = b.end - b.first;
  next_bucket_ = 0;
}

double DataParallelAdamW::step(double lr) {
  if (!group_) return adamw_->step(lr);
  const double ranks = static_cast<double>(group_->size());
  reduce_gradients();
  if (zero_stage_ == 0) {
    flat_.scale_(1.0 / ranks);
    // The parameters' gradients become views of the averaged buffer: no copy back.
    for (size_t i = 0; i < params_.size(); ++i)
      params_[i].set_grad(flat_range(flat_, offsets_[i], params_[i].numel()).view(params_[i].shape()));
    return adamw_->step(lr);
  }
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

// whole (laid out as the flat buffer) ← every rank's slice (laid out as slice_grad_), bucket by bucket.
void DataParallelAdamW::gather_slices(const Tensor& slice, Tensor& whole) const {
  for (const Bucket& b : buckets_) {
    const Tensor chunk = flat_range(slice, b.slice_at, b.numel / group_->size());
    Tensor all = flat_range(whole, b.begin, b.numel);
    group_->all_gather(chunk, all);
  }
}

void DataParallelAdamW::gather_parameters() {
  for (size_t k = 0; k < pieces_.size(); ++k) {
    Tensor to = flat_range(slice_send_, pieces_[k].at, pieces_[k].length);
    to.copy_(piece_params_[k]);
  }
  gather_slices(slice_send_, flat_);
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
    Tensor send = zeros({slice_grad_.numel()}, DType::F32, device), whole = empty({flat_.numel()}, DType::F32, device);
    for (size_t k = 0; k < pieces_.size(); ++k) {
      Tensor to = flat_range(send, pieces_[k].at, pieces_[k].length);
      to.copy_(((*adamw_).*moments)()[k]);
    }
    gather_slices(send, whole);
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
