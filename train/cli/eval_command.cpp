// `t6 eval`: the mean cross-entropy of a checkpoint over token shards, as perplexity and bits.
#include <cmath>
#include <nlohmann/json.hpp>

#include "train/cli/cli_args.h"
#include "train/cli/commands.h"
#include "train/evaluate.h"
#include "train/model_checkpoint.h"
#include "train/execution.h"
#include "train/memory_estimate.h"
#include "train/train_config.h"

namespace t6 {

namespace {
const char* const kHelp = R"(usage: t6 eval --checkpoint FILE [--config FILE] --data GLOB [--batch-size B] [--seq-len T]
               [--batches N] [--device cpu|cuda] [--json]

Mean cross-entropy over N sequential batches of the token shards matching GLOB (N = 0: every complete
window), with perplexity and bits per token, next to the unigram baseline (the entropy of the same
data's token frequencies: the best a model without context can do). Defaults: B 8, T the model's block_size, N 0. --config is
needed only for checkpoints without a stored model config (e.g. exported from PyTorch).
)";
}  // namespace

int run_eval_command(const std::vector<std::string>& args, std::ostream& out, std::ostream&) {
  const ParsedArgs a("eval", args,
                     {{"--checkpoint"}, {"--config"}, {"--data"}, {"--batch-size"}, {"--seq-len"}, {"--batches"},
                      {"--device"}, {"--json", false}, {"--help", false}});
  if (a.has("--help")) {
    out << kHelp;
    return 0;
  }
  T6_CHECK(a.has("--checkpoint") && a.has("--data"), "t6 eval needs --checkpoint FILE and --data GLOB");
  std::optional<ModelConfig> supplied;
  if (a.has("--config")) supplied = read_model_config(a.get("--config"));
  const SafetensorsFile file = SafetensorsFile::open(a.get("--checkpoint"));
  const ModelConfig config = checkpoint_config(file, supplied);
  const ExecutionScope execution({parse_device(a.get("--device", "cpu"))}, "--device");
  const int64_t B = a.get_int("--batch-size", 8), T = a.get_int("--seq-len", config.block_size);
  T6_CHECK(B >= 1 && T >= 1 && T <= config.block_size, "--batch-size must be ≥ 1 and --seq-len in [1, ",
           config.block_size, "] (the model's block_size)");
  check_memory_fits(inference_memory(config, B, T, 0, execution.device()), execution.device(),
                    "lower --batch-size or --seq-len");
  auto model = std::make_unique<T6Model>(config);
  load_model_weights(*model, file);
  model->to(execution.device());
  const int64_t batches = a.get_int("--batches", 0);
  T6_CHECK(batches >= 0, "--batches must be ≥ 0 (0: every complete window), got ", batches);
  const BatchLoader data(a.get("--data"), B, T, model->config.vocab_size, false, 0);
  const EvalResult r = evaluate(*model, data, batches);
  if (a.has("--json")) {
    out << nlohmann::json{{"loss", r.mean_loss}, {"perplexity", r.perplexity()}, {"bits_per_token", r.bits_per_token()},
                          {"unigram_bits_per_token", r.unigram_bits_per_token}, {"batches", r.batches}, {"tokens", r.tokens}}.dump()
        << "\n";
  } else {
    out << "loss " << r.mean_loss << " nats/token | perplexity " << r.perplexity() << " | " << r.bits_per_token()
        << " bits/token (unigram baseline of the same data: " << r.unigram_bits_per_token << ") | " << r.batches
        << " batches, " << r.tokens << " tokens\n";
  }
  return 0;
}

}  // namespace t6
