// Mean cross-entropy of a model over the first N sequential windows of token data (the validation
// loss of the trainer and `t6 eval`).
#pragma once
#include "nn/t6_model.h"
#include "train/data/batch_loader.h"

namespace t6 {

struct EvalResult {
  double mean_loss = 0.0;  // nats per token
  int64_t batches = 0;
  int64_t tokens = 0;
  // The baseline a model must beat: the entropy of the evaluated targets' own unigram distribution,
  // i.e. the loss of the best model that ignores context, in bits per token.
  double unigram_bits_per_token = 0.0;
  double perplexity() const;
  double bits_per_token() const;
};

// Reads windows 0, 1, … of `data` (all complete windows when batches ≤ 0) without recording a graph.
// With a data-parallel loader (RankSlice), every rank evaluates its rows of the same windows: the mean
// of the ranks' mean_loss is the loss of one rank reading whole windows; tokens and the unigram
// entropy are this rank's own.
EvalResult evaluate(const T6Model& model, const BatchLoader& data, int64_t batches);

}  // namespace t6
