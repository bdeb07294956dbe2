#include "train/evaluate.h"

#include <cmath>

#include "autograd/node.h"

namespace t6 {

double EvalResult::perplexity() const { return std::exp(mean_loss); }
double EvalResult::bits_per_token() const { return mean_loss / std::log(2.0); }

EvalResult evaluate(const T6Model& model, const BatchLoader& data, int64_t batches) {
  NoGradGuard no_grad;
  EvalResult r;
  r.batches = data.eval_batch_count(batches);
  std::vector<int32_t> inputs, targets;
  std::vector<int64_t> counts(static_cast<size_t>(model.config.vocab_size), 0);
  double total = 0.0;
  for (int64_t w = 0; w < r.batches; ++w) {
    data.read_window(w, inputs, targets);
    for (int32_t id : targets) ++counts[id];
    const Tensor x = from_ints(inputs, {data.B(), data.T()}), y = from_ints(targets, {data.B(), data.T()});
    total += model.loss(x, y).item();  // every window has B·T counted targets: equal weights
  }
  r.tokens = r.batches * data.B() * data.T();
  r.mean_loss = r.batches > 0 ? total / static_cast<double>(r.batches) : 0.0;
  for (int64_t c : counts) {
    if (c == 0) continue;
    const double p = static_cast<double>(c) / static_cast<double>(r.tokens);
    r.unigram_bits_per_token -= p * std::log2(p);
  }
  return r;
}

}  // namespace t6
