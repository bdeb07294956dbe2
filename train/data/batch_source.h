// Where a training step's batches come from: token shards (train/data/batch_loader.h) for training,
// random tokens (train/data/random_batches.h) for `t6 bench train`, so both run the same step.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

namespace t6 {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // The next (B,T) batch, row-major: targets[i] is the token that follows inputs[i]. Both resized to B·T.
  virtual void next_batch(std::vector<int32_t>& inputs, std::vector<int32_t>& targets) = 0;
  // The position in the stream, saved in checkpoints, and its inverse.
  virtual nlohmann::json state() const = 0;
  virtual void restore(const nlohmann::json& state) = 0;
};

}  // namespace t6
