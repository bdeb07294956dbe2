// AdamW for data-parallel training: every rank computes the gradient of its own rows of the batch,
// and the update is the one a single process would make from the whole batch. Without a group (one
// process, not launched by mpirun) it is exactly AdamW.
//
// With a group of N ranks the gradients are packed into one flat buffer, split into buckets of about
// train.bucket_mb each (whole parameters, from the last one back: the order backward finishes them
// in), and each bucket is
//   zero_stage 0: all-reduced and divided by N, so every rank holds the mean gradient, measures the
//                 same global norm and makes the same AdamW update on every parameter;
//   zero_stage 1: padded to a multiple of N and reduce-scattered, so rank r holds the mean gradient of
//                 chunk r of every bucket (its slice) only; the global norm is the all-reduced sum of
//                 the slices' squares; AdamW updates the parameters' elements in rank r's slice with
//                 moments kept for them only (1/N of the optimizer state per rank), and an all-gather
//                 of each bucket's chunks gives every rank all of the updated parameters.
// Elementwise AdamW makes the two the same update; only the order of the norm's sum differs.
//
// Overlap with backward: the trainer passes reduce_during_backward() to its last backward() of a
// step; the autograd engine calls it as each parameter's gradient becomes final, the gradient is
// copied into the buffer, and a bucket whose gradients are all there starts its reduction without
// waiting (Communicator::start_*: on CUDA on NCCL's stream, beside backward's kernels). step() packs
// what backward did not reach (unused parameters: zeros), waits for every bucket, then clips and
// updates. Buckets start in one fixed order on every rank, whatever order backward finishes them in,
// since every rank must call the collectives in the same order. That needs backward to reach the same
// parameters on every rank (a T6 uses each of them at every step): a bucket started during backward
// on one rank and by step() on another would cross the trainer's loss all-reduce in between.
#pragma once
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/communicator.h"
#include "train/adamw.h"

namespace t6 {

class DataParallelAdamW {
 public:
  // group: null for one process. zero_stage: 0 or 1 (train.zero_stage). bucket_mb: MiB of gradients
  // per bucket (train.bucket_mb); 0: one bucket, reduced after backward.
  DataParallelAdamW(std::vector<Tensor> params, const OptimConfig& config, Communicator* group, int zero_stage,
                    double bucket_mb);

  // For the last backward() before step(): starts reducing each bucket as soon as backward has
  // finished its gradients. Empty when there is nothing to overlap (one process, or one bucket).
  GradReadyHook reduce_during_backward();

  // Averages the gradients over the ranks and makes one AdamW update at `lr`, clipping with the global
  // norm; returns that norm (before clipping). A non-finite norm throws on every rank alike, before
  // any parameter changes.
  double step(double lr);

  // The whole state; with zero_stage 1 every rank must call it (the slices are all-gathered).
  OptimizerState state() const;
  // Sets the state from a whole one (each rank keeps its slice with zero_stage 1).
  void set_state(const OptimizerState& state);

 private:
  // Parameters [first, end) at [begin, begin + numel) of the flat buffer; with zero_stage 1 numel is
  // padded to a multiple of N, and this rank's chunk of numel / N is at slice_at in the slice.
  struct Bucket {
    size_t first, end;
    int64_t begin, numel, slice_at;
    size_t unpacked;  // parameters whose gradient is not in the buffer yet, this step
  };
  // One parameter's part of this rank's slice: elements [begin, begin + length) of parameter `index`,
  // at `at` in the slice.
  struct Piece {
    size_t index;
    int64_t begin, length, at;
  };
  void make_buckets(double bucket_mb);
  void make_pieces();
  void pack(size_t index);
  void start_complete_buckets();
  void reduce_gradients();
  void gather_slices(const Tensor& slice, Tensor& whole) const;
  void gather_parameters();

  std::vector<Tensor> params_;
  Communicator* group_;
  int zero_stage_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // of each parameter
  std::vector<int64_t> offsets_;   // of each parameter in the flat buffer
  std::unordered_map<const TensorImpl*, size_t> index_of_;  // the parameters, for reduce_during_backward
  std::vector<bool> packed_;       // this step
  size_t next_bucket_ = 0;         // the next to start, this step
  Tensor flat_;                    // gradients, then (zero_stage 1) the gathered parameters
  Tensor slice_grad_, slice_send_;
  std::vector<Piece> pieces_;
  std::vector<Tensor> piece_params_;  // views of the parameters' storage
  std::optional<AdamW> adamw_;       // over the parameters, or (zero_stage 1) the pieces; none when empty
  int64_t steps_ = 0;
};

}  // namespace t6
