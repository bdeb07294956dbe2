#include "train/memory_estimate.h"

#include <algorithm>
#include <cstdio>

#include "autograd/ops.h"
#include "core/backend.h"
#include "core/error.h"
#include "nn/parameter_layout.h"

namespace t6 {

namespace {

constexpr double kFloat = 4.0;

std::string gib(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return text;
}

// Floats a forward pass keeps per token (all layers), and per sequence for the score matrices. The
// head's logits exist one chunk at a time (linear_cross_entropy): the chunk and a bfloat16 copy of it.
double activation_bytes(const ModelConfig& c, double batch, double seq_len, Device device) {
  const double d = static_cast<double>(c.n_embd), heads = static_cast<double>(c.n_head * c.head_dim),
               F = static_cast<double>(c.mlp_hidden()), L = static_cast<double>(c.n_layer);
  const double factors = 2.0 * static_cast<double>((c.n_head + c.head_dim) * (c.q_rank + 2 * c.rank));
  const double per_token = L * (8 * d + 6 * heads + 4 * F + factors);
  const double chunk = std::min(batch * seq_len, static_cast<double>(linear_cross_entropy_chunk_rows(c.vocab_size))) *
                       static_cast<double>(c.vocab_size);
  double bytes = (batch * seq_len * per_token + 1.5 * chunk) * kFloat;
  if (!backend(device).prefers_fused_attention(c.head_dim))  // scores and probabilities, [H, T, T] per layer
    bytes += L * batch * static_cast<double>(c.n_head) * seq_len * seq_len * 2 * kFloat;
  return bytes;
}

}  // namespace

double MemoryNeed::total() const {
  double sum = 0;
  for (const auto& [what, bytes] : parts) sum += bytes;
  return sum;
}

std::string MemoryNeed::describe() const {
  std::string text = gib(total()) + " (";
  for (size_t i = 0; i < parts.size(); ++i) text += (i ? ", " : "") + parts[i].first + " " + gib(parts[i].second);
  return text + ")";
}

MemoryNeed training_memory(const ModelConfig& c, int64_t batch, int64_t seq_len, Device device) {
  const double params = static_cast<double>(parameter_total(c)) * kFloat;
  return {{{"parameters", params},
           {"gradients", params},
           {"AdamW state", 2 * params},
           {cat("activations of ", batch, "x", seq_len, " tokens"),
            activation_bytes(c, static_cast<double>(batch), static_cast<double>(seq_len), device)}}};
}

MemoryNeed inference_memory(const ModelConfig& c, int64_t batch, int64_t seq_len, int64_t cache_tokens,
                            Device device) {
  MemoryNeed need = {{{"parameters", static_cast<double>(parameter_total(c)) * kFloat},
                      {cat("activations of ", batch, "x", seq_len, " tokens"),
                       activation_bytes(c, static_cast<double>(batch), static_cast<double>(seq_len), device) /
                           static_cast<double>(c.n_layer)}}};  // no graph: one layer's activations live at a time
  if (cache_tokens > 0)
    need.parts.emplace_back("KV cache", static_cast<double>(c.kv_cache_numbers_per_token_per_layer()) *
                                            static_cast<double>(c.n_layer) * static_cast<double>(batch) *
                                            static_cast<double>(cache_tokens) * kFloat);
  return need;
}

void check_memory_fits(const MemoryNeed& need, Device device, const std::string& fix) {
  const double free = static_cast<double>(backend(device).free_memory());
  T6_CHECK(need.total() <= free, "this needs about ", need.describe(), " but the ", device_name(device), " has ",
           gib(free), " available; ", fix);
}

}  // namespace t6
