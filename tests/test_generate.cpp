// Generation with the KV cache: decode-step logits against the full forward for every attention
// variant (single prompts of several lengths and batches of prompts of different lengths), the
// generation API (determinism, seeds, top-k = 1 = greedy, stop token, block_size, bad input), the
// sampler, and the `t6 generate` command.
#include <doctest/doctest.h>

#include <cstdlib>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data_test_support.h"
#include "nn/fused_decode.h"
#include "nn/generate.h"
#include "test_helpers.h"
#include "train/cli/commands.h"
#include "train/model_checkpoint.h"
#include "train/data/tokenizer.h"

using namespace t6;
using namespace t6::testing;

namespace {

const std::vector<std::string> kVariants = {"tpa", "tpa_kvonly", "mha", "gqa", "mqa"};

ModelConfig small_config(const std::string& attention) {
  ModelConfig c;
  c.vocab_size = 23;
  c.n_layer = 2;
  c.n_embd = 16;
  c.n_head = 4;
  c.head_dim = 8;
  c.q_rank = 3;
  c.rank = 2;
  c.block_size = 16;
  c.attention = attention_kind_names().parse(attention, "attention");
  c.n_kv_head = attention == "gqa" ? 2 : 0;
  return c;
}

// The spec's init zeroes both c_proj layers, which would hide attention from every check: a model whose
// every parameter is random instead.
std::unique_ptr<T6Model> random_model(const ModelConfig& c, uint64_t seed = 17, DType dtype = DType::F32) {
  auto model = std::make_unique<T6Model>(c);
  model->to(dtype);
  Generator gen(seed);
  model->fill_uniform(gen, 0.5);
  return model;
}

// Feeds each row's first prompt_lengths[b] tokens through prefill and the rest of its tokens through
// decode steps (every row has the same number of tokens after its prompt), and checks the logits at
// every position from the last prompt token on against the full forward of the row alone.
// With `fused` weights the decode steps run the fused decode step (nn/fused_decode.h) over them, with
// the cache in `cache_dtype` (the model's if none).
void check_decode_matches_forward(const T6Model& model, const std::vector<std::vector<int32_t>>& sequences,
                                  const std::vector<int64_t>& prompt_lengths, double tolerance,
                                  const DecodeWeights* fused = nullptr,
                                  std::optional<DType> cache_dtype = std::nullopt) {
  const int64_t B = static_cast<int64_t>(sequences.size()), V = model.config.vocab_size;
  const int64_t steps = static_cast<int64_t>(sequences[0].size()) - prompt_lengths[0];
  int64_t longest_prompt = 0, longest = 0;
  for (int64_t b = 0; b < B; ++b) {
    REQUIRE(static_cast<int64_t>(sequences[b].size()) - prompt_lengths[b] == steps);
    longest_prompt = std::max(longest_prompt, prompt_lengths[b]);
    longest = std::max(longest, static_cast<int64_t>(sequences[b].size()));
  }
  std::vector<int32_t> padded(static_cast<size_t>(B * longest_prompt), 0);
  for (int64_t b = 0; b < B; ++b)
    std::copy(sequences[b].begin(), sequences[b].begin() + prompt_lengths[b], padded.begin() + b * longest_prompt);
  KVCache cache(model.config, B, longest, model.device(), cache_dtype.value_or(model.transformer.wte.weight.dtype()));

  std::vector<std::vector<double>> got(static_cast<size_t>(B));  // per row: logits of every position decoded
  auto append = [&](const Tensor& logits) {
    const std::vector<double> v = logits.to_double_vector();
    for (int64_t b = 0; b < B; ++b) got[b].insert(got[b].end(), v.begin() + b * V, v.begin() + (b + 1) * V);
  };
  append(model.prefill(from_ints(padded, {B, longest_prompt}), prompt_lengths, cache));
  for (int64_t s = 0; s < steps; ++s) {
    std::vector<int32_t> next(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) next[b] = sequences[b][prompt_lengths[b] + s];
    append(model.decode_step(from_ints(next, {B}), cache, fused));
  }
  for (int64_t b = 0; b < B; ++b) {
    INFO("row " << b << ", prompt of " << prompt_lengths[b] << " tokens");
    const int64_t T = static_cast<int64_t>(sequences[b].size());
    const std::vector<double> full = model.forward(from_ints(sequences[b], {1, T})).logits.to_double_vector();
    const std::vector<double> expected(full.begin() + (prompt_lengths[b] - 1) * V, full.end());
    CHECK(max_scaled_error(got[b], expected) <= tolerance);
  }
}

}  // namespace

TEST_CASE("decode-step logits equal the full forward's at every position, for every attention variant") {
  Generator gen(1);
  const std::vector<int32_t> sequence = random_token_ids(14, 23, gen);
  for (const std::string& variant : kVariants) {
    for (int64_t prompt : {1, 5, 11}) {
      INFO("attention " << variant << ", prompt of " << prompt);
      check_decode_matches_forward(*random_model(small_config(variant)), {sequence}, {prompt}, 1e-5);
      // in float64 the two paths agree to rounding of float64
      check_decode_matches_forward(*random_model(small_config(variant), 17, DType::F64), {sequence}, {prompt}, 1e-12);
    }
  }
}

TEST_CASE("the fused decode step equals the full forward: float32, float64, and bfloat16 weights") {
  Generator gen(3);
  const std::vector<int64_t> prompts = {4, 1, 7};
  std::vector<std::vector<int32_t>> sequences;
  for (int64_t p : prompts) sequences.push_back(random_token_ids(p + 6, 23, gen));
  for (const std::string variant : {"tpa", "tpa_kvonly"}) {
    INFO("attention " << variant);
    const auto model = random_model(small_config(variant));
    const DecodeWeights same = decode_weights(*model, DType::F32);
    check_decode_matches_forward(*model, sequences, prompts, 1e-5, &same);
    const auto model64 = random_model(small_config(variant), 17, DType::F64);
    const DecodeWeights same64 = decode_weights(*model64, DType::F64);
    check_decode_matches_forward(*model64, sequences, prompts, 1e-12, &same64);  // float64 rounding only
    // Weights rounded to bfloat16 (8 significant bits, relative error up to 2^-9) move these random
    // models' logits by up to 0.027 (scaled), two layers deep: 0.05 leaves a margin of about 2.
    const DecodeWeights bf16 = decode_weights(*model, DType::BF16);
    check_decode_matches_forward(*model, sequences, prompts, 0.05, &bf16);
    // The cache in bfloat16 too, as generation keeps it on a GPU: the cached factors and the query
    // factors rounded once more (relative error up to 2^-9 each) move the logits by up to 0.049: 0.1.
    check_decode_matches_forward(*model, sequences, prompts, 0.1, &bf16, DType::BF16);
  }
}

TEST_CASE("decode_weights: only for the factorized attentions, in bfloat16 or the model's dtype") {
  CHECK_THROWS_WITH_AS(decode_weights(*random_model(small_config("mha")), DType::F32),
                       doctest::Contains("serves the factorized attentions"), Error);
  CHECK_THROWS_WITH_AS(decode_weights(*random_model(small_config("tpa")), DType::F64),
                       doctest::Contains("use bfloat16 or the model's float32"), Error);
}

TEST_CASE("batched prompts of different lengths: each row decodes exactly as it would alone") {
  Generator gen(2);
  const std::vector<int64_t> prompts = {4, 1, 7};
  std::vector<std::vector<int32_t>> sequences;
  for (int64_t p : prompts) sequences.push_back(random_token_ids(p + 6, 23, gen));
  for (const std::string& variant : kVariants) {
    INFO("attention " << variant);
    check_decode_matches_forward(*random_model(small_config(variant)), sequences, prompts, 1e-5);
  }
}

TEST_CASE("generate: greedy is deterministic, and a batch generates what each row would alone") {
  for (const std::string& variant : kVariants) {
    INFO("attention " << variant);
    const auto model = random_model(small_config(variant));
    GenerationOptions greedy;
    greedy.greedy = true;
    greedy.max_new_tokens = 6;
    const std::vector<std::vector<int32_t>> prompts = {{3, 1, 4, 1}, {5}, {9, 2, 6, 5, 3, 5, 8}};
    const GenerationResult batch = generate(*model, prompts, greedy);
    CHECK(generate(*model, prompts, greedy).tokens == batch.tokens);
    for (size_t b = 0; b < prompts.size(); ++b) {
      CHECK(batch.tokens[b].size() == 6);
      CHECK(generate(*model, {prompts[b]}, greedy).tokens[0] == batch.tokens[b]);
    }
    CHECK(batch.prefill_tokens == 4 + 1 + 7);
    CHECK(batch.decode_tokens == 3 * 5);  // the first new token of each row comes from the prefill
    CHECK(batch.cache_capacity == 7 + 6 - 1);
    CHECK(batch.cache_bytes == batch.cache_bytes_per_token * 3 * batch.cache_capacity);
    CHECK(batch.cache_bytes_per_token == 4 * 2 * model->config.kv_cache_numbers_per_token_per_layer());
  }
}

TEST_CASE("generate: sampling is reproducible from the seed; top-k = 1 and temperature 0 are greedy") {
  const auto model = random_model(small_config("tpa"));
  const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, {7, 7}};
  GenerationOptions o;
  o.max_new_tokens = 12;
  o.temperature = 2.0;
  o.seed = 42;
  const GenerationResult a = generate(*model, prompts, o), b = generate(*model, prompts, o);
  CHECK(a.tokens == b.tokens);
  o.seed = 43;
  CHECK(generate(*model, prompts, o).tokens != a.tokens);

  GenerationOptions greedy;
  greedy.greedy = true;
  greedy.max_new_tokens = 12;
  const GenerationResult expected = generate(*model, prompts, greedy);
  o.top_k = 1;
  CHECK(generate(*model, prompts, o).tokens == expected.tokens);
  o.top_k = 0;
  o.temperature = 0.0;
  CHECK(generate(*model, prompts, o).tokens == expected.tokens);
}

TEST_CASE("generate: tokens stream as they come, a stop token ends its row, block_size ends a row") {
  const auto model = random_model(small_config("tpa"));  // block_size 16
  GenerationOptions o;
  o.greedy = true;
  o.max_new_tokens = 8;
  const std::vector<std::vector<int32_t>> prompts = {{2, 4, 6}, {1}};
  std::vector<std::vector<int32_t>> streamed(2);
  const GenerationResult r =
      generate(*model, prompts, o, [&](int64_t row, int32_t token) { streamed[row].push_back(token); });
  CHECK(streamed == r.tokens);
  CHECK(r.filled_block_size == std::vector<bool>{false, false});

  // stop at the first occurrence of row 0's third token: the row ends before it, the other goes on
  // unless it produces that token too
  const int32_t stop = r.tokens[0][2];
  o.stop_token = stop;
  const GenerationResult stopped = generate(*model, prompts, o);
  const auto first = std::find(r.tokens[0].begin(), r.tokens[0].end(), stop);
  CHECK(stopped.tokens[0] == std::vector<int32_t>(r.tokens[0].begin(), first));
  const auto first1 = std::find(r.tokens[1].begin(), r.tokens[1].end(), stop);
  CHECK(stopped.tokens[1] == std::vector<int32_t>(r.tokens[1].begin(), first1));
  o.stop_token.reset();

  // 14 prompt tokens leave room for 2 new ones in block_size 16; 16 leave none
  const GenerationResult full = generate(*model, {std::vector<int32_t>(14, 3), std::vector<int32_t>(16, 3), {3}}, o);
  CHECK(full.tokens[0].size() == 2);
  CHECK(full.tokens[1].empty());
  CHECK(full.tokens[2].size() == 8);
  CHECK(full.filled_block_size == std::vector<bool>{true, true, false});
  CHECK(full.cache_capacity == 16);  // allocated once, for the longest context the request can reach
  CHECK(generate(*model, {std::vector<int32_t>(14, 3)}, o).cache_capacity == 15);  // the 16th token is never fed
  o.max_new_tokens = 2;
  CHECK(generate(*model, {std::vector<int32_t>(14, 3)}, o).filled_block_size[0] == false);  // exactly fits
}

TEST_CASE("generate: bad input is one clear error each") {
  const auto model = random_model(small_config("tpa"));
  GenerationOptions o;
  auto message = [&](const std::vector<std::vector<int32_t>>& prompts, const GenerationOptions& options) {
    return error_message([&] { generate(*model, prompts, options); });
  };
  CHECK(message({}, o) == "generate: no prompts");
  CHECK(message({{}}, o) == "the prompt is empty; give at least one token");
  CHECK(message({{1}, {}}, o) == "prompt 1 is empty; give at least one token");
  CHECK(message({std::vector<int32_t>(17, 1)}, o) ==
        "the prompt has 17 tokens, more than the model's block_size of 16; shorten it");
  CHECK(message({{1, 23}}, o) == "token id 23 at position 1 of the prompt is outside the model's vocabulary [0, 23); "
                                  "was the prompt encoded with the model's tokenizer?");
  CHECK(message({{-1}}, o).find("token id -1 at position 0") != std::string::npos);
  GenerationOptions bad = o;
  bad.top_k = -1;
  CHECK(message({{1}}, bad).find("top_k must be ≥ 1 (or 0 for no top-k limit), got -1") != std::string::npos);
  bad = o;
  bad.temperature = -0.5;
  CHECK(message({{1}}, bad).find("temperature must be ≥ 0") != std::string::npos);
  bad = o;
  bad.top_p = 0;
  CHECK(message({{1}}, bad).find("top_p must be in (0, 1], got 0") != std::string::npos);
  bad = o;
  bad.max_new_tokens = 0;
  CHECK(message({{1}}, bad) == "max_new_tokens must be ≥ 1, got 0");
  bad = o;
  bad.vocab_limit = 24;
  CHECK(message({{1}}, bad).find("vocab_limit must be in [0, 23]") != std::string::npos);
}

TEST_CASE("sample_token: greedy ties, top-k, top-p and temperature") {
  Generator gen(3);
  SamplingOptions greedy;
  greedy.greedy = true;
  CHECK(sample_token(std::vector<double>{0, 3, 1, 3}, greedy, gen) == 1);  // ties go to the lower id
  // top-k = 2 of four tokens: only the two most likely are ever drawn
  SamplingOptions top2;
  top2.top_k = 2;
  std::vector<int> counts(4, 0);
  for (int i = 0; i < 4000; ++i) ++counts[sample_token(std::vector<double>{0.1, 2.0, 1.9, -1.0}, top2, gen)];
  CHECK(counts[0] == 0);
  CHECK(counts[3] == 0);
  CHECK(counts[1] > counts[2]);  // e^0.1 more likely: about 52.5% against 47.5%

  // top-p = 0.7 over probabilities 0.5, 0.3, 0.15, 0.05 keeps the first two (0.8 ≥ 0.7), renormalised
  const std::vector<double> logits = {std::log(0.5), std::log(0.3), std::log(0.15), std::log(0.05)};
  SamplingOptions nucleus;
  nucleus.top_p = 0.7;
  counts.assign(4, 0);
  for (int i = 0; i < 4000; ++i) ++counts[sample_token(logits, nucleus, gen)];
  CHECK(counts[2] + counts[3] == 0);
  CHECK(counts[0] / 4000.0 == doctest::Approx(0.5 / 0.8).epsilon(0.05));

  // plain sampling follows softmax(logits / temperature): temperature 0.5 squares the probabilities
  SamplingOptions sharp;
  sharp.temperature = 0.5;
  counts.assign(4, 0);
  for (int i = 0; i < 8000; ++i) ++counts[sample_token(logits, sharp, gen)];
  const double z = 0.25 + 0.09 + 0.0225 + 0.0025;
  CHECK(counts[0] / 8000.0 == doctest::Approx(0.25 / z).epsilon(0.05));
  CHECK(counts[1] / 8000.0 == doctest::Approx(0.09 / z).epsilon(0.1));
}

namespace {

struct CommandRun {
  int status;
  std::string out, err;
};

CommandRun run_t6(std::vector<std::string> args) {
  std::ostringstream out, err;
  const int status = run_command_line(args, out, err);
  return {status, out.str(), err.str()};
}

ModelConfig byte_config() {
  ModelConfig c = small_config("tpa");
  c.vocab_size = 256;
  c.n_layer = 1;
  c.block_size = 32;
  return c;
}

}  // namespace

TEST_CASE("t6 generate: streams text, prints JSON, reports speed and cache size") {
  TempDir dir;
  const auto model = random_model(byte_config());
  const std::string checkpoint = dir / "model.safetensors";
  save_model(*model, checkpoint, "byte");
  GenerationOptions greedy;
  greedy.greedy = true;
  greedy.max_new_tokens = 5;
  const std::unique_ptr<Tokenizer> bytes = make_tokenizer(TokenizerKind::Byte);
  const std::vector<int32_t> expected = generate(*model, {bytes->encode("Hi")}, greedy).tokens[0];

  const CommandRun text = run_t6({"generate", "--checkpoint", checkpoint, "--prompt", "Hi", "--max-new-tokens", "5",
                                  "--greedy"});
  INFO(text.err);
  CHECK(text.status == 0);
  CHECK(text.out == "Hi" + bytes->decode(expected) + "\n");
  CHECK(text.err.find("prefill: 2 tokens in ") != std::string::npos);
  CHECK(text.err.find("decode:  4 tokens in ") != std::string::npos);
  CHECK(text.err.find("tokens/s") != std::string::npos);
  // 1 layer, 2R(H + dh) = 2·2·(4 + 8) = 48 numbers per token: 192 bytes; 2 + 5 − 1 = 6 slots
  CHECK(text.err.find("KV cache: 1,152 bytes allocated, 6 tokens × 192 bytes per token (1 layer, float32)") !=
        std::string::npos);
  CHECK(text.err.find("this model (tpa)        192") != std::string::npos);
  CHECK(text.err.find("MHA, 2 heads            128") != std::string::npos);  // d = 16 is two heads of 8

  const std::string prompt_file = dir.write("prompt.txt", "Hi");
  const CommandRun json = run_t6({"generate", "--checkpoint", checkpoint, "--prompt-file", prompt_file,
                                  "--max-new-tokens", "5", "--greedy", "--json", "--num-samples", "2"});
  CHECK(json.status == 0);
  std::istringstream lines(json.out);
  std::string line;
  int samples = 0;
  while (std::getline(lines, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    CHECK(j.at("ids").get<std::vector<int32_t>>() == expected);
    CHECK(j.at("text").is_string());
    ++samples;
  }
  CHECK(samples == 2);

  // sampling with a seed is reproducible through the command too, and stops at block_size
  const std::vector<std::string> sampled = {"generate", "--checkpoint", checkpoint, "--prompt", "abc", "--seed", "5",
                                            "--temperature", "1.5", "--top-k", "50", "--top-p", "0.9", "--json"};
  const CommandRun s1 = run_t6(sampled), s2 = run_t6(sampled);
  CHECK(s1.status == 0);
  CHECK(s1.out == s2.out);
  CHECK(nlohmann::json::parse(s1.out).at("ids").size() == 32 - 3);  // 256 asked; block_size 32 holds 29 more
  CHECK(s1.err.find("note: sample 1 stopped at the model's block_size of 32 tokens (prompt 3 + 29 new); "
                    "--allow-beyond-block-size goes on past it") != std::string::npos);
}

TEST_CASE("t6 generate --allow-beyond-block-size: a prompt and new tokens past block_size, cache sized for them") {
  TempDir dir;
  const std::string checkpoint = dir / "model.safetensors";
  save_model(*random_model(byte_config()), checkpoint, "byte");  // block_size 32
  const std::string prompt(40, 'a');
  ModelConfig longer = byte_config();
  longer.block_size = 40 + 6;  // the same weights: block_size shapes none of them
  GenerationOptions greedy;
  greedy.greedy = true;
  greedy.max_new_tokens = 6;
  const std::unique_ptr<Tokenizer> bytes = make_tokenizer(TokenizerKind::Byte);
  const std::vector<int32_t> expected = generate(*random_model(longer), {bytes->encode(prompt)}, greedy).tokens[0];
  REQUIRE(expected.size() == 6);

  const CommandRun r = run_t6({"generate", "--checkpoint", checkpoint, "--prompt", prompt, "--max-new-tokens", "6",
                               "--greedy", "--json", "--allow-beyond-block-size"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(nlohmann::json::parse(r.out).at("ids").get<std::vector<int32_t>>() == expected);
  CHECK(r.err.find("note:") == std::string::npos);
  CHECK(r.err.find("KV cache: 8,640 bytes allocated, 45 tokens × 192 bytes per token") != std::string::npos);  // 40 + 6 − 1
}

TEST_CASE("t6 generate: each bad input is one clear error and a non-zero exit") {
  TempDir dir;
  const std::string checkpoint = dir / "model.safetensors";
  save_model(*random_model(byte_config()), checkpoint, "byte");
  ModelConfig narrow = byte_config();
  narrow.vocab_size = 50;
  const std::string narrow_checkpoint = dir / "narrow.safetensors";
  save_model(*random_model(narrow), narrow_checkpoint, "byte");
  ModelConfig other = byte_config();
  other.n_head = 2;
  const std::string other_config = dir.write("other.json", other.to_json().dump());

  auto fails_with = [&](const std::vector<std::string>& args, const std::string& expected) {
    INFO(expected);
    std::vector<std::string> full = {"generate"};
    full.insert(full.end(), args.begin(), args.end());
    const CommandRun r = run_t6(full);
    CHECK(r.status != 0);
    CHECK(r.out.empty());
    CHECK(r.err.rfind("t6 generate: error: ", 0) == 0);
    CHECK(r.err.find(expected) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);  // one line
  };
  fails_with({"--prompt", "x"}, "--checkpoint FILE is required");
  fails_with({"--checkpoint", checkpoint, "--prompt", ""}, "the prompt is empty");
  fails_with({"--checkpoint", checkpoint}, "give a prompt with --prompt TEXT or --prompt-file PATH");
  fails_with({"--checkpoint", checkpoint, "--prompt", std::string(33, 'a')},
             "the prompt has 33 tokens, more than the model's block_size of 32; shorten it, or pass "
             "--allow-beyond-block-size");
  fails_with({"--checkpoint", narrow_checkpoint, "--prompt", "z"},
             "token id 122 at position 0 of the prompt is outside the model's vocabulary [0, 50)");
  fails_with({"--checkpoint", checkpoint, "--config", other_config, "--prompt", "x"},
             "does not match the config given");
  fails_with({"--checkpoint", checkpoint, "--prompt", "x", "--top-k", "0"}, "--top-k must be ≥ 1, got 0");
  fails_with({"--checkpoint", checkpoint, "--prompt", "x", "--temperature", "-1"}, "--temperature must be ≥ 0");
  fails_with({"--checkpoint", checkpoint, "--prompt", "x", "--top-p", "1.5"}, "--top-p must be in (0, 1]");
  fails_with({"--checkpoint", checkpoint, "--prompt", "x", "--max-new-tokens", "0"}, "--max-new-tokens must be ≥ 1");
  fails_with({"--checkpoint", checkpoint, "--prompt", "x", "--prompt-file", "p.txt"}, "not both");
  fails_with({"--checkpoint", dir / "missing.safetensors", "--prompt", "x"}, "missing.safetensors");
}

TEST_CASE("t6 generate with the GPT-2 tokenizer: starts from end-of-text, samples only real tokens" *
          needs_gpt2_vocab()) {
  ::setenv("T6_GPT2_DIR", gpt2_vocab_dir_for_tests().c_str(), 1);
  TempDir dir;
  ModelConfig c = small_config("tpa");
  c.vocab_size = 50304;  // GPT-2's 50257 padded, as the paper's models
  c.n_layer = 1;
  const std::string checkpoint = dir / "gpt2.safetensors";
  save_model(*random_model(c), checkpoint, "gpt2");
  const CommandRun r = run_t6({"generate", "--checkpoint", checkpoint, "--max-new-tokens", "10", "--json"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  const std::vector<int32_t> ids = nlohmann::json::parse(r.out).at("ids").get<std::vector<int32_t>>();
  CHECK(ids.size() <= 10);
  for (int32_t id : ids) CHECK(id < 50256);  // never a padding id, and end-of-text ends the sample unprinted
}

TEST_SUITE("cuda generate" * t6::testing::needs_cuda()) {

// Regression: on the GPU the cache is bfloat16 (decode_cache_dtype) while the weights are float32, and
// the cache line and the comparison rows named and counted the weights' dtype.
TEST_CASE("t6 generate --device cuda reports the bfloat16 cache it decodes from") {
  TempDir dir;
  const std::string checkpoint = dir / "model.safetensors";
  save_model(*random_model(byte_config()), checkpoint, "byte");
  const CommandRun run = run_t6({"generate", "--checkpoint", checkpoint, "--prompt", "Hi", "--max-new-tokens", "5",
                                 "--greedy", "--device", "cuda"});
  INFO(run.err);
  CHECK(run.status == 0);
  // 48 numbers per token and layer, 2 bytes each
  CHECK(run.err.find("6 tokens × 96 bytes per token (1 layer, bfloat16)") != std::string::npos);
  CHECK(run.err.find("this model (tpa)        96") != std::string::npos);
}

}  // TEST_SUITE
