// Batches of (inputs, targets) from token shards, the way the spec reads them: the shards matched by a
// glob pattern are concatenated in name order, and window w is the tokens [w·G·T, (w+1)·G·T + 1) for
// the global batch G; inputs are all but its last token, targets all but its first, each a row-major
// (G,T) block. Windows may cross shard boundaries; the last, incomplete window is never used.
//
// Training order: without shuffling, batch i is window i (mod the number of windows: epochs wrap). With
// shuffling, each epoch visits every window once in a random order drawn from (seed, epoch), so a
// resumed run can rebuild it from its saved state() and continue bit-identically.
//
// Data parallelism: with N ranks and a per-rank batch B, the global batch is G = N·B and rank r gets
// rows [r·B, (r+1)·B) of each window, i.e. the tokens [w·G·T + r·B·T, w·G·T + (r+1)·B·T + 1). So N
// ranks together consume the same windows, in the same order, as one rank with batch N·B. Evaluation
// is split the same way: read_window gives this rank's rows of a window, every rank evaluates the same
// windows, and the mean of the ranks' losses (each a mean over B·T tokens) is the 1-rank loss of the
// whole window, each window counting once; one rank thus does 1/N of the evaluation work.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/data/batch_source.h"

namespace t6 {

// Which rows of every window this process reads, in data-parallel training: rank `rank` of
// `world_size` processes. The default is a run on one process, which reads whole windows.
struct RankSlice {
  int rank = 0;
  int world_size = 1;
};

class BatchLoader : public BatchSource {
 public:
  // Reads every shard matched by `pattern` (glob(3) syntax, e.g. "data/tiny/train_*.bin") and checks
  // each token is < vocab_size. B is the batch of this rank; windows have world_size·B rows. A pattern
  // matching nothing, an invalid shard, or too few tokens for one window is a t6::Error.
  BatchLoader(const std::string& pattern, int64_t B, int64_t T, int64_t vocab_size, bool shuffle, uint64_t seed,
              RankSlice slice = {});

  // This rank's rows of the next training window. inputs and targets are resized to B·T.
  void next_batch(std::vector<int32_t>& inputs, std::vector<int32_t>& targets) override;

  // This rank's rows of window w in file order, independent of the training position: evaluation reads
  // windows 0, 1, 2, ... (the same ones on every rank).
  void read_window(int64_t w, std::vector<int32_t>& inputs, std::vector<int32_t>& targets) const;
  // The number of sequential windows an evaluation of `requested` batches reads: all complete windows
  // when requested <= 0 or when there are fewer. The same on every rank.
  int64_t eval_batch_count(int64_t requested) const;

  // The training position, as JSON {"epoch", "index", "seed", "shuffle", "windows", "B", "T"} where B is
  // the global batch (world_size times this rank's), and its inverse. restore() refuses a state saved
  // with another seed, shuffle flag, global batch, T or amount of data, since the run would then not
  // continue as it was; a state saved by N ranks of batch B restores on M ranks of batch B' when
  // N·B = M·B'.
  nlohmann::json state() const override;
  void restore(const nlohmann::json& state) override;

  int64_t num_windows() const { return num_windows_; }
  int64_t total_tokens() const { return static_cast<int64_t>(tokens_.size()); }
  const std::vector<std::string>& files() const { return files_; }
  int64_t epoch() const { return epoch_; }
  int64_t index_in_epoch() const { return index_; }
  int64_t B() const { return B_; }  // this rank's batch: the rows of next_batch and read_window
  int64_t T() const { return T_; }
  int64_t global_batch() const { return B_ * slice_.world_size; }  // the rows of a window
  RankSlice slice() const { return slice_; }

 private:
  void start_epoch(int64_t epoch);  // sets epoch_ and, when shuffling, order_

  std::string pattern_;
  int64_t B_, T_;
  RankSlice slice_;
  bool shuffle_;
  uint64_t seed_;
  std::vector<std::string> files_;
  std::vector<uint16_t> tokens_;  // all shards, concatenated in name order
  int64_t num_windows_ = 0;

  int64_t epoch_ = 0;
  int64_t index_ = 0;            // batches already taken in this epoch
  std::vector<int64_t> order_;   // this epoch's window order (only when shuffling)
};

}  // namespace t6
