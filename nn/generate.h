// Text generation with the KV cache: one batched prefill of the prompts that fills the cache, then one
// decode step per new token (T6Model::prefill and T6Model::decode_step). Used by `t6 generate` and by
// the trainer's periodic samples.
//
// Several prompts of different lengths run as one batch, left-aligned with per-row lengths: every row
// starts at position 0 (RoPE positions are each row's own), the prompts are right-padded to the longest
// for the prefill, and the cache records each row's length. In the prefill, causal attention keeps a
// row's padding (which comes after its prompt) from reaching its prompt tokens; after it, each row
// writes its next token over its first padding slot and attends only to its own length. So every row
// computes what it would alone, and its padding is never read.
//
// The context of a row (prompt + generated tokens) never exceeds block_size: a row whose context fills
// it stops there, and the result says so. The cache is allocated once, for the longest row the request
// can reach.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "nn/sampling.h"
#include "nn/t6_model.h"

namespace t6 {

struct GenerationOptions : SamplingOptions {
  int64_t max_new_tokens = 256;       // per row; ≥ 1
  uint64_t seed = 1337;               // of the sampling Generator; greedy draws nothing
  std::optional<int32_t> stop_token;  // end-of-text: a row ends when it produces it (not included)
  // Sample only ids below this (a tokenizer's vocabulary inside a padded V, e.g. GPT-2's 50257 in
  // 50304); 0 allows the whole vocabulary of the model.
  int64_t vocab_limit = 0;

  void validate(const ModelConfig& config) const;  // throws t6::Error naming the bad option
};

struct GenerationResult {
  std::vector<std::vector<int32_t>> tokens;  // per row, the new tokens (no prompt, no stop token)
  std::vector<bool> filled_block_size;       // per row: stopped early because its context reached block_size
  int64_t prefill_tokens = 0;                // prompt tokens (without padding)
  int64_t decode_tokens = 0;                 // tokens of rows still generating, over all decode steps
  double prefill_seconds = 0, decode_seconds = 0;  // the model's work, sampling and callbacks excluded
  int64_t cache_bytes = 0;            // allocated: all layers, rows and slots
  int64_t cache_bytes_per_token = 0;  // one token of one row, all layers
  int64_t cache_capacity = 0;         // slots per row
  int64_t operations_per_step = 0;    // kernels and copies of one captured decode step; 0 without a graph
};

// Called with (row, token) for each new token as soon as it is chosen: for streaming.
using TokenCallback = std::function<void(int64_t row, int32_t token)>;

// The prompt checks generate() starts with, for callers that show a prompt before generating: no
// prompts, an empty prompt, one longer than block_size or a token id outside the vocabulary throws.
void check_prompts(const std::vector<std::vector<int32_t>>& prompts, const ModelConfig& config);

// Bad input (no prompts, an empty prompt, a prompt longer than block_size, a token id outside the
// model's vocabulary, bad options) throws t6::Error before any work.
GenerationResult generate(const T6Model& model, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationOptions& options, const TokenCallback& on_token = nullptr);

}  // namespace t6
