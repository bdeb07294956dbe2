#include "nn/parameter_matching.h"

#include <cstdlib>
#include <optional>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "nn/parameter_layout.h"

namespace t6 {

namespace {

struct Candidate {
  ModelConfig config;
  int64_t parameters;
};

// Every head count of `kind` at head_dim dh whose model has at most `ceiling` parameters. The count grows
// with H (and with G), so each scan stops at the first one past the ceiling.
std::vector<Candidate> candidates_at(const ModelConfig& variant, int64_t dh, int64_t ceiling) {
  const AttentionKind kind = variant.attention;
  ModelConfig c = variant;
  c.head_dim = dh;
  c.n_kv_head = 0;
  std::vector<Candidate> found;
  auto fits = [&](int64_t heads, int64_t kv_heads) {
    c.n_head = heads;
    c.n_kv_head = kv_heads;
    const int64_t n = parameter_total(c);
    if (n > ceiling) return false;
    found.push_back({c, n});
    return true;
  };
  if (kind != AttentionKind::GQA) {
    int64_t heads = 1;
    while (fits(heads, 0)) ++heads;
    return found;
  }
  for (int64_t groups = 2; fits(2 * groups, groups); ++groups) {
    int64_t heads = 3 * groups;
    while (fits(heads, groups)) heads += groups;
  }
  return found;
}

// Lower is better: GQA's distance from groups of 4, then the distance in parameters.
std::tuple<int64_t, int64_t> preference(const Candidate& c, int64_t target) {
  const int64_t group_distance =
      c.config.attention == AttentionKind::GQA ? std::llabs(c.config.n_head / c.config.n_kv_head - 4) : 0;
  return {group_distance, std::llabs(c.parameters - target)};
}

}  // namespace

MatchedAttention match_parameters(const ModelConfig& reference, AttentionKind kind, double tolerance) {
  ModelConfig variant = reference;
  variant.attention = kind;
  return match_parameters(variant, parameter_total(reference), tolerance);
}

MatchedAttention match_parameters(const ModelConfig& variant, int64_t target, double tolerance) {
  T6_CHECK(tolerance > 0 && tolerance < 1, "match_parameters: the tolerance must lie in (0, 1), got ", tolerance);
  const AttentionKind kind = variant.attention;
  const auto slack = static_cast<int64_t>(tolerance * static_cast<double>(target));
  std::optional<Candidate> nearest;  // over every head_dim tried, for the error message
  // head_dim: the reference's, then outwards in steps of 2 (RoPE needs it even), up to 4x the reference's.
  const int64_t dh0 = variant.head_dim;
  for (int64_t step = 0; step <= 2 * dh0; ++step) {
    const std::vector<int64_t> head_dims =
        step == 0 ? std::vector<int64_t>{dh0} : std::vector<int64_t>{dh0 - 2 * step, dh0 + 2 * step};
    for (const int64_t dh : head_dims) {
      if (dh < 2) continue;
      std::optional<Candidate> best;
      for (const Candidate& c : candidates_at(variant, dh, target + slack)) {
        if (!nearest || std::llabs(c.parameters - target) < std::llabs(nearest->parameters - target)) nearest = c;
        if (std::llabs(c.parameters - target) > slack) continue;
        if (!best || preference(c, target) < preference(*best, target)) best = c;
      }
      if (best) return {best->config, best->parameters, target};
    }
  }
  const std::string near =
      nearest ? cat("; the nearest is n_head ", nearest->config.n_head, ", head_dim ", nearest->config.head_dim, " with ",
                    nearest->parameters, " parameters")
              : "";
  throw Error(cat("no head count or head_dim gives attention \"", attention_kind_names().name(kind),
                  "\" within ", tolerance * 100, "% of ", target, " parameters", near,
                  "; give its n_head and head_dim by hand"));
}

}  // namespace t6
