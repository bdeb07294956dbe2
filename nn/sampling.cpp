#include "nn/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"

namespace t6 {

void SamplingOptions::validate() const {
  T6_CHECK(std::isfinite(temperature) && temperature >= 0, "temperature must be ≥ 0 (0 means greedy), got ",
           temperature);
  T6_CHECK(top_k >= 0, "top_k must be ≥ 1 (or 0 for no top-k limit), got ", top_k);
  T6_CHECK(top_p > 0 && top_p <= 1, "top_p must be in (0, 1], got ", top_p);
}

int32_t sample_token(std::span<const double> logits, const SamplingOptions& options, Generator& gen) {
  T6_CHECK(!logits.empty(), "sample_token: no logits to choose from");
  const auto more_likely = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  if (options.is_greedy()) {
    int32_t best = 0;
    for (int32_t i = 1; i < static_cast<int32_t>(logits.size()); ++i)
      if (more_likely(i, best)) best = i;
    return best;
  }
  // the candidates, most likely first when a top-k or top-p cut needs the order
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  if (options.top_k > 0 || options.top_p < 1) {
    const size_t keep =
        options.top_k > 0 ? std::min<size_t>(ids.size(), static_cast<size_t>(options.top_k)) : ids.size();
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end(), more_likely);
    ids.resize(keep);
  }
  // unnormalised probabilities exp((logit − max) / temperature)
  double largest = -INFINITY;
  for (int32_t id : ids) largest = std::max(largest, logits[id]);
  std::vector<double> weights(ids.size());
  double total = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    weights[i] = std::exp((logits[ids[i]] - largest) / options.temperature);
    total += weights[i];
  }
  if (options.top_p < 1) {  // the shortest most-likely prefix holding top_p of the probability
    double kept = 0;
    size_t n = 0;
    while (n < ids.size() && kept < options.top_p * total) kept += weights[n++];
    ids.resize(std::max<size_t>(n, 1));
    weights.resize(ids.size());
    total = std::accumulate(weights.begin(), weights.end(), 0.0);
  }
  double u = gen.uniform() * total;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (u < weights[i]) return ids[i];
    u -= weights[i];
  }
  return ids.back();  // u landed past the last weight through rounding
}

}  // namespace t6
