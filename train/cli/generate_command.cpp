// `t6 generate`: text from a checkpoint, streamed to stdout as it is produced, with the KV cache of
// nn/generate.h; a summary of speed and cache size goes to stderr.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "nn/fused_decode.h"
#include "nn/generate.h"
#include "train/cli/cli_args.h"
#include "train/cli/commands.h"
#include "train/model_checkpoint.h"
#include "train/data/tokenizer.h"
#include "train/execution.h"
#include "train/memory_estimate.h"
#include "train/train_config.h"

namespace t6 {

namespace {

const char* const kHelp = R"(usage: t6 generate --checkpoint FILE [--config FILE] [--prompt TEXT | --prompt-file PATH]
                   [--max-new-tokens N] [--temperature X] [--top-k K] [--top-p P] [--greedy]
                   [--seed S] [--num-samples N] [--device cpu|cuda] [--json] [--allow-beyond-block-size]

Continues the prompt with tokens sampled from the model, one decode step per token over the KV cache
(for TPA the cache holds only the factors), and writes the prompt and the new text to stdout as it is
produced. A sample ends at the end-of-text token (GPT-2), after --max-new-tokens tokens, or when prompt
and new tokens fill the model's block_size (unless --allow-beyond-block-size). Prefill and decode speed
and the cache size (next to MHA, GQA and MQA of the same width) go to stderr.

  --checkpoint FILE    a safetensors model written by t6 train (or exported, with --config)
  --config FILE        model or training config; needed when the checkpoint has none, else it must match
  --prompt TEXT        the text to continue
  --prompt-file PATH   the text to continue, read from a file
                       (neither: start from the end-of-text token, if the tokenizer has one)
  --max-new-tokens N   at most N new tokens per sample (default 256)
  --temperature X      ≥ 0; sharper below 1, flatter above; 0 is greedy (default 1)
  --top-k K            sample only among the K most likely tokens (K ≥ 1; default: all)
  --top-p P            sample only among the most likely tokens holding probability P, in (0, 1]
  --greedy             always the most likely token
  --seed S             seed of the sampler (default 1337); sample i uses S + i
  --num-samples N      how many samples of the same prompt (default 1)
  --device cpu|cuda    where the model runs (default cpu; cuda needs a GPU build)
  --json               instead of streaming text, print {"ids": [...], "text": "..."} per sample, one per
                       line: the new tokens' ids and text (the prompt not included)
  --allow-beyond-block-size
                       let the prompt and the new tokens go past the block_size the model was trained
                       for, up to prompt + --max-new-tokens (the KV cache is sized for that). RoPE
                       extrapolates numerically, but a model has not learned positions it never saw:
                       expect the text to degrade there

The tokenizer is the one recorded in the checkpoint, else the training config's data.tokenizer, else
gpt2 for a vocabulary of 50257 or more and byte otherwise.
)";

// The tokenizer recorded in the checkpoint, else in a training config's data section, else a guess from V.
TokenizerKind tokenizer_kind(const SafetensorsFile& file, const ParsedArgs& a, const ModelConfig& config) {
  if (const std::string recorded = checkpoint_tokenizer(file); !recorded.empty())
    return tokenizer_kind_names().parse(recorded, cat(file.path(), ": the recorded tokenizer"));
  if (a.has("--config")) return read_data_config(a.get("--config")).tokenizer;
  return config.vocab_size >= 50257 ? TokenizerKind::GPT2 : TokenizerKind::Byte;
}

std::string read_prompt_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  T6_CHECK(in, "--prompt-file: cannot read \"", path, "\"");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

GenerationOptions read_options(const ParsedArgs& a) {
  GenerationOptions o;
  o.max_new_tokens = a.get_int("--max-new-tokens", o.max_new_tokens);
  T6_CHECK(o.max_new_tokens >= 1, "--max-new-tokens must be ≥ 1, got ", o.max_new_tokens);
  o.temperature = a.get_double("--temperature", o.temperature);
  T6_CHECK(o.temperature >= 0, "--temperature must be ≥ 0 (0 means greedy), got ", a.get("--temperature"));
  o.top_k = a.get_int("--top-k", 0);
  T6_CHECK(!a.has("--top-k") || o.top_k >= 1, "--top-k must be ≥ 1, got ", o.top_k,
           "; leave it out to sample from every token");
  o.top_p = a.get_double("--top-p", 1.0);
  T6_CHECK(o.top_p > 0 && o.top_p <= 1, "--top-p must be in (0, 1], got ", a.get("--top-p"));
  o.greedy = a.has("--greedy");
  const int64_t seed = a.get_int("--seed", static_cast<int64_t>(o.seed));
  T6_CHECK(seed >= 0, "--seed must be ≥ 0, got ", seed);
  o.seed = static_cast<uint64_t>(seed);
  o.SamplingOptions::validate();  // what the checks above let through (a NaN, …)
  return o;
}

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string rate(int64_t tokens, double seconds) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s tokens in %.3f s (%.1f tokens/s)", with_commas(tokens).c_str(), seconds,
                seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0);
  return buf;
}

}  // namespace

int run_generate_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const ParsedArgs a("generate", args,
                     {{"--checkpoint"}, {"--config"}, {"--prompt"}, {"--prompt-file"}, {"--max-new-tokens"},
                      {"--temperature"}, {"--top-k"}, {"--top-p"}, {"--greedy", false}, {"--seed"},
                      {"--num-samples"}, {"--device"}, {"--json", false}, {"--allow-beyond-block-size", false},
                      {"--help", false}});
  if (a.has("--help")) {
    out << kHelp;
    return 0;
  }
  T6_CHECK(a.has("--checkpoint"), "--checkpoint FILE is required; see t6 generate --help");
  T6_CHECK(!(a.has("--prompt") && a.has("--prompt-file")), "give --prompt or --prompt-file, not both");
  GenerationOptions options = read_options(a);
  const int64_t samples = a.get_int("--num-samples", 1);
  T6_CHECK(samples >= 1, "--num-samples must be ≥ 1, got ", samples);
  const bool json = a.has("--json");

  std::optional<ModelConfig> supplied;
  if (a.has("--config")) supplied = read_model_config(a.get("--config"));
  const SafetensorsFile file = SafetensorsFile::open(a.get("--checkpoint"));
  ModelConfig config = checkpoint_config(file, supplied);
  const std::unique_ptr<Tokenizer> tokenizer = make_tokenizer(tokenizer_kind(file, a, config));

  std::string prompt_text;
  std::vector<int32_t> prompt;
  if (a.has("--prompt") || a.has("--prompt-file")) {
    prompt_text = a.has("--prompt") ? a.get("--prompt") : read_prompt_file(a.get("--prompt-file"));
    T6_CHECK(!prompt_text.empty(), "the prompt is empty; give some text to continue");
    prompt = tokenizer->encode(prompt_text);
  } else {
    T6_CHECK(tokenizer->end_of_text().has_value(), "give a prompt with --prompt TEXT or --prompt-file PATH (the ",
             tokenizer->name(), " tokenizer has no end-of-text token to start from)");
    prompt = {*tokenizer->end_of_text()};
  }
  const int64_t prompt_tokens = static_cast<int64_t>(prompt.size());
  const bool beyond = a.has("--allow-beyond-block-size");
  T6_CHECK(beyond || prompt_tokens <= config.block_size, "the prompt has ", prompt_tokens,
           " tokens, more than the model's block_size of ", config.block_size,
           "; shorten it, or pass --allow-beyond-block-size to go past the trained length");
  // Nothing in the weights depends on block_size: raising it lets RoPE's positions and the cache reach
  // the longest context asked for.
  if (beyond) config.block_size = std::max(config.block_size, prompt_tokens + options.max_new_tokens);
  check_prompts({prompt}, config);  // before the prompt is shown

  const ExecutionScope execution({parse_device(a.get("--device", "cpu"))}, "--device");
  check_memory_fits(inference_memory(config, 1, config.block_size, config.block_size, execution.device()),
                    execution.device(), "use a smaller model");
  T6Model model(config);
  load_model_weights(model, file);
  model.to(execution.device());
  const ModelConfig& c = model.config;
  options.stop_token = tokenizer->end_of_text();
  options.vocab_limit = std::min<int64_t>(c.vocab_size, tokenizer->vocab_size());

  GenerationResult total;  // speed over all samples
  const uint64_t first_seed = options.seed;
  for (int64_t i = 0; i < samples; ++i) {
    options.seed = first_seed + static_cast<uint64_t>(i);
    if (!json) out << prompt_text << std::flush;
    const TokenCallback stream = [&](int64_t, int32_t token) { out << tokenizer->decode_token(token) << std::flush; };
    const GenerationResult r = generate(model, {prompt}, options, json ? TokenCallback() : stream);
    if (json) {
      const nlohmann::json line = {{"ids", r.tokens[0]}, {"text", tokenizer->decode(r.tokens[0])}};
      out << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";  // bytes → valid UTF-8
    } else {
      out << "\n" << (i + 1 < samples ? "---\n" : "") << std::flush;
    }
    if (r.filled_block_size[0])
      err << "note: sample " << i + 1 << " stopped at the model's block_size of " << c.block_size
          << " tokens (prompt " << prompt.size() << " + " << r.tokens[0].size()
          << " new); --allow-beyond-block-size goes on past it\n";
    total.prefill_tokens += r.prefill_tokens, total.prefill_seconds += r.prefill_seconds;
    total.decode_tokens += r.decode_tokens, total.decode_seconds += r.decode_seconds;
    total.cache_bytes = r.cache_bytes, total.cache_bytes_per_token = r.cache_bytes_per_token;
    total.cache_capacity = r.cache_capacity;
  }

  err << "prefill: " << rate(total.prefill_tokens, total.prefill_seconds) << "\n";
  err << "decode:  " << rate(total.decode_tokens, total.decode_seconds) << "\n";
  const DType dtype = decode_cache_dtype(model);  // the cache's, which may be narrower than the weights
  err << "KV cache: " << with_commas(total.cache_bytes) << " bytes allocated, " << total.cache_capacity
      << " tokens × " << with_commas(total.cache_bytes_per_token) << " bytes per token (" << c.n_layer
      << (c.n_layer == 1 ? " layer, " : " layers, ") << dtype_name(dtype) << ")\n";
  err << "  bytes per token, all layers, for comparison:\n";
  for (const KVCacheSize& s : kv_cache_comparison(c)) {
    const int64_t bytes = s.numbers_per_layer * c.n_layer * static_cast<int64_t>(dtype_size(dtype));
    err << "    " << s.variant << std::string(s.variant.size() < 24 ? 24 - s.variant.size() : 1, ' ')
        << with_commas(bytes) << "\n";
  }
  return 0;
}

}  // namespace t6
