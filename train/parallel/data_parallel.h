// AdamW for data-parallel training: every rank computes the gradient of its own rows of the batch,
// and the update is the one a single process would make from the whole batch. Without a group (one
// process, not launched by mpirun) it is exactly AdamW.
//
// With a group of N ranks, after backward the gradients are packed into one flat buffer (in parameter
// order, padded to a multiple of N) and
//   zero_stage 0: all-reduced and divided by N, so every rank holds the mean gradient, measures the
//                 same global norm and makes the same AdamW update on every parameter;
//   zero_stage 1: reduce-scattered and divided by N, so rank r holds the mean gradient of slice r of
//                 the buffer only; the global norm is the all-reduced sum of the slices' squares;
//                 AdamW updates slice r of the parameters with moments kept for slice r only (1/N of
//                 the optimizer state per rank), and an all-gather of the slices gives every rank all
//                 of the updated parameters.
// Elementwise AdamW makes the two the same update; only the order of the norm's sum differs.
//
// Overlap with backward: the collective runs once backward has finished. The flat buffer is laid out
// in parameter order, which is close to the reverse of the order backward produces gradients in, so
// it splits into buckets that could each be reduced as soon as their last gradient is final, on a
// communication stream, while backward continues; that needs a gradient-ready hook in the autograd
// engine, which t6 does not have yet.
#pragma once
#include <memory>
#include <optional>
#include <vector>

#include "core/communicator.h"
#include "train/adamw.h"

namespace t6 {

class DataParallelAdamW {
 public:
  // group: null for one process. zero_stage: 0 or 1 (train.zero_stage).
  DataParallelAdamW(std::vector<Tensor> params, const OptimConfig& config, Communicator* group, int zero_stage);

  // Averages the gradients over the ranks and makes one AdamW update at `lr`, clipping with the global
  // norm; returns that norm (before clipping). A non-finite norm throws on every rank alike, before
  // any parameter changes.
  double step(double lr);

  // The whole state; with zero_stage 1 every rank must call it (the slices are all-gathered).
  OptimizerState state() const;
  // Sets the state from a whole one (each rank keeps its slice with zero_stage 1).
  void set_state(const OptimizerState& state);

 private:
  // One parameter's part of this rank's slice: elements [begin, begin + length) of parameter `index`,
  // at `at` in the slice.
  struct Piece {
    size_t index;
    int64_t begin, length, at;
  };
  void pack_gradients();
  void gather_parameters();

  std::vector<Tensor> params_;
  Communicator* group_;
  int zero_stage_;
  std::vector<int64_t> offsets_;  // of each parameter in the flat buffer
  int64_t slice_ = 0;             // elements per rank (zero_stage 1)
  Tensor flat_;                   // gradients, then (zero_stage 1) the gathered parameters
  Tensor slice_grad_, slice_send_;
  std::vector<Piece> pieces_;
  std::vector<Tensor> piece_params_;  // views of the parameters' storage
  std::optional<AdamW> adamw_;       // over the parameters, or (zero_stage 1) the pieces; none when empty
  int64_t steps_ = 0;
};

}  // namespace t6
