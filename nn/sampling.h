// Choosing the next token from a row of logits: the most likely one (greedy), or a draw from
// softmax(logits / temperature) restricted to the top_k most likely tokens and then to the smallest set
// of most likely tokens whose probability reaches top_p (nucleus sampling).
#pragma once
#include <cstdint>
#include <span>

#include "core/random.h"

namespace t6 {

struct SamplingOptions {
  double temperature = 1.0;  // ≥ 0; 0 means greedy
  int64_t top_k = 0;         // keep the k most likely tokens; 0 keeps all
  double top_p = 1.0;        // in (0, 1]; 1 keeps all
  bool greedy = false;       // always the most likely token

  bool is_greedy() const { return greedy || temperature == 0.0; }
  void validate() const;  // throws t6::Error naming the bad option and its allowed range
};

// The chosen index into `logits`. Ties between equally likely tokens go to the lower index, so greedy
// and top_k = 1 pick the same token. Sampling draws one number from `gen`; greedy draws none.
int32_t sample_token(std::span<const double> logits, const SamplingOptions& options, Generator& gen);

}  // namespace t6
