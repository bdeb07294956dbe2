// Batches of seeded random tokens: what `t6 bench train` feeds the training step, so it needs no data.
#pragma once
#include "core/random.h"
#include "train/data/batch_source.h"

namespace t6 {

class RandomBatches : public BatchSource {
 public:
  RandomBatches(int64_t B, int64_t T, int64_t vocab_size, uint64_t seed)
      : tokens_per_batch_(static_cast<size_t>(B * T)), vocab_size_(vocab_size), gen_(seed) {}

  void next_batch(std::vector<int32_t>& inputs, std::vector<int32_t>& targets) override {
    tokens_.resize(tokens_per_batch_);  // here, not in the constructor: a size too large is refused before
    for (int32_t& id : tokens_) id = static_cast<int32_t>(gen_.below(static_cast<uint64_t>(vocab_size_)));
    inputs = tokens_;
    targets = tokens_;
  }
  nlohmann::json state() const override { return nlohmann::json::object(); }
  void restore(const nlohmann::json&) override {}

 private:
  size_t tokens_per_batch_;
  std::vector<int32_t> tokens_;
  int64_t vocab_size_;
  Generator gen_;
};

}  // namespace t6
