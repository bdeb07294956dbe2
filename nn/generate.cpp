#include "nn/generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "nn/decode_graph.h"

namespace t6 {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

void check_prompts(const std::vector<std::vector<int32_t>>& prompts, const ModelConfig& c) {
  T6_CHECK(!prompts.empty(), "generate: no prompts");
  for (size_t b = 0; b < prompts.size(); ++b) {
    const std::string which = prompts.size() > 1 ? cat("prompt ", b) : std::string("the prompt");
    T6_CHECK(!prompts[b].empty(), which, " is empty; give at least one token");
    T6_CHECK(static_cast<int64_t>(prompts[b].size()) <= c.block_size, which, " has ", prompts[b].size(),
             " tokens, more than the model's block_size of ", c.block_size, "; shorten it");
    for (size_t i = 0; i < prompts[b].size(); ++i)
      T6_CHECK(prompts[b][i] >= 0 && prompts[b][i] < c.vocab_size, "token id ", prompts[b][i], " at position ", i,
               " of ", which, " is outside the model's vocabulary [0, ", c.vocab_size,
               "); was the prompt encoded with the model's tokenizer?");
  }
}

void GenerationOptions::validate(const ModelConfig& config) const {
  SamplingOptions::validate();
  T6_CHECK(max_new_tokens >= 1, "max_new_tokens must be ≥ 1, got ", max_new_tokens);
  T6_CHECK(vocab_limit >= 0 && vocab_limit <= config.vocab_size, "vocab_limit must be in [0, ",
           config.vocab_size, "] (the model's vocabulary), got ", vocab_limit);
}

GenerationResult generate(const T6Model& model, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationOptions& options, const TokenCallback& on_token) {
  const ModelConfig& c = model.config;
  options.validate(c);
  check_prompts(prompts, c);
  const int64_t B = static_cast<int64_t>(prompts.size());
  const int64_t V = options.vocab_limit > 0 ? options.vocab_limit : c.vocab_size;

  // Row b may add budget[b] tokens. Its last one is never fed back, so the row fills lengths[b] +
  // budget[b] − 1 slots; the prefill fills `longest` slots of every row.
  std::vector<int64_t> lengths(B), budget(B);
  int64_t longest = 0, capacity = 0;
  for (int64_t b = 0; b < B; ++b) {
    lengths[b] = static_cast<int64_t>(prompts[b].size());
    budget[b] = std::min(options.max_new_tokens, c.block_size - lengths[b]);
    longest = std::max(longest, lengths[b]);
    capacity = std::max({capacity, longest, lengths[b] + budget[b] - 1});
  }
  KVCache cache(c, B, capacity, model.device(), decode_cache_dtype(model));

  GenerationResult result;
  result.tokens.resize(B);
  result.filled_block_size.assign(B, false);
  result.cache_bytes = cache.bytes_allocated();
  result.cache_bytes_per_token = cache.bytes_per_token();
  result.cache_capacity = cache.capacity();
  std::vector<bool> active(B);
  for (int64_t b = 0; b < B; ++b) {
    active[b] = budget[b] > 0;
    result.filled_block_size[b] = !active[b];
    result.prefill_tokens += lengths[b];
  }

  // Picks each active row's next token from logits (B,V) and ends rows that are done.
  Generator gen(options.seed);
  auto choose = [&](const Tensor& logits) {
    const std::vector<double> values = logits.to_double_vector();
    for (int64_t b = 0; b < B; ++b) {
      if (!active[b]) continue;
      const std::span<const double> row(values.data() + b * c.vocab_size, static_cast<size_t>(V));
      const int32_t token = sample_token(row, options, gen);
      if (options.stop_token && token == *options.stop_token) {
        active[b] = false;
        continue;
      }
      result.tokens[b].push_back(token);
      if (on_token) on_token(b, token);
      if (static_cast<int64_t>(result.tokens[b].size()) == budget[b]) {
        active[b] = false;
        result.filled_block_size[b] = budget[b] < options.max_new_tokens;
      }
    }
  };

  std::vector<int32_t> padded(static_cast<size_t>(B * longest), 0);  // any valid id pads
  for (int64_t b = 0; b < B; ++b) std::copy(prompts[b].begin(), prompts[b].end(), padded.begin() + b * longest);
  auto start = std::chrono::steady_clock::now();
  Tensor logits = model.prefill(from_ints(padded, {B, longest}), lengths, cache);
  logits = logits.to_device(Device::CPU);  // waits for the device: the time includes the work
  result.prefill_seconds = seconds_since(start);
  choose(logits);

  std::vector<int32_t> last(static_cast<size_t>(B), 0);
  DecodeGraph decoder(model, cache);  // on a GPU, every step after the first two replays one captured graph
  while (std::count(active.begin(), active.end(), true) > 0) {
    // finished rows step along with the others (their output is ignored)
    for (int64_t b = 0; b < B; ++b)
      if (!result.tokens[b].empty()) last[b] = result.tokens[b].back();
    result.decode_tokens += std::count(active.begin(), active.end(), true);
    start = std::chrono::steady_clock::now();
    logits = decoder.step(last).to_device(Device::CPU);
    result.decode_seconds += seconds_since(start);
    choose(logits);
  }
  result.operations_per_step = decoder.operations_per_step();
  return result;
}

}  // namespace t6
