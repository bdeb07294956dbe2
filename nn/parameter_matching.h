// Attention variants at equal parameter counts, the way the paper compares them.
//
// The paper sizes the number of heads of every variant so that all of them have the parameter count of
// MHA with H = d/64 (spec, "Variants in the paper"; T6 small takes H = 34 for that). Here the reference
// is the given config — usually a T6 — and every other variant is sized to it:
//   - the variant keeps the reference's depth, width d, MLP, vocabulary, block size and seeds, so only
//     its attention differs; it takes the reference's ranks when it is a TPA variant;
//   - it chooses its query heads H, and for GQA its key/value heads G (a divisor of H, 1 < G < H), so
//     that the whole model's parameter count lies within `tolerance` (1%) of the reference's;
//   - head_dim stays the reference's whenever some head count gets within the tolerance; only when none
//     does (a small model, where one head is more than 2% of the parameters) does head_dim move, in steps
//     of 2, to the nearest value that gets there;
//   - among the counts within the tolerance, GQA prefers groups of H/G = 4 query heads per key/value
//     head (the paper's and llama's), then the smallest difference in parameters; the others the
//     smallest difference.
// Counts are the modules' own (T6Model::shapes_only), never a second formula.
#pragma once
#include <cstdint>

#include "nn/model_config.h"

namespace t6 {

struct MatchedAttention {
  ModelConfig config;           // the reference with attention, n_head, head_dim and n_kv_head set
  int64_t parameters = 0;       // of config
  int64_t reference_parameters = 0;
  double relative_difference() const {
    return static_cast<double>(parameters - reference_parameters) / static_cast<double>(reference_parameters);
  }
};

// `variant` (its attention kind, ranks and everything else but n_head, head_dim and n_kv_head) sized to
// `target_parameters`. Throws t6::Error when no head count and head_dim gets within the tolerance,
// naming the nearest.
MatchedAttention match_parameters(const ModelConfig& variant, int64_t target_parameters, double tolerance = 0.01);
// The same for attention `kind` at the parameter count of `reference`.
MatchedAttention match_parameters(const ModelConfig& reference, AttentionKind kind, double tolerance = 0.01);

}  // namespace t6
