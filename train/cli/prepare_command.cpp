// `t6 prepare`: the command line over prepare_shards (train/data/prepare.h).
#include "train/cli/prepare_command.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/cpu/threads.h"
#include "core/error.h"
#include "train/cli/cli_args.h"
#include "train/data/prepare.h"

namespace t6 {

const char* prepare_command_help() {
  return R"(usage: t6 prepare --input PATH... --tokenizer byte|gpt2 --out DIR [options]

Tokenizes text files into token shards for training: DIR/train_000000.bin, DIR/train_000001.bin, ...
and DIR/val_000000.bin, ... (llm.c format: a 256-int32 header, then uint16 tokens), plus DIR/prepare.json
with the summary.

  --input PATH...       text files, or directories (their regular files, sorted by name, not recursing);
                        may be repeated; the inputs are read in the order given
  --tokenizer NAME      byte: one token per byte (256 ids, no special tokens)
                        gpt2: GPT-2 BPE (50257 ids); needs encoder.json and vocab.bpe from
                        scripts/fetch_gpt2_vocab.sh, or in the directory $T6_GPT2_DIR
  --out DIR             output directory, created if needed
  --val-fraction F      share of the tokens held out for validation, 0 <= F < 1 (default 0.01)
  --doc-separator LINE  split each file into documents at the lines equal to LINE (e.g. "%" for fortune
                        files); without it, each file is one document
  --shard-tokens N      tokens per shard file (default 100000000)
  --threads N           tokenizing threads (default 0: every core)
  --json                print the summary as one JSON object
  -h, --help            show this help

Values may also be written --flag=value (needed for a separator that starts with "--").

Documents: gpt2 puts its end-of-text token (50256) before every document; byte has no special token, so
the documents of a split are joined with a newline. Empty documents are skipped.

Validation split: the last documents of the input, in order, taken from the end until they hold at least
F of all tokens. With F > 0 and two or more documents, at least one document goes to validation and at
least one stays in training; a single document is not split (there is then no val shard).

Streaming: the text is read in blocks and the shards are written as the tokens come, so inputs of any
size fit in memory; long documents are cut at pre-token boundaries and tokenized on all cores, with the
same output as whole. On stderr, progress (MB/s, tokens/s, time left) and the throughput at the end.

Shards left in DIR by an earlier run that this run does not overwrite are deleted; a run that fails
leaves them as they were.
)";
}

namespace {

struct PrepareCommand {
  PrepareOptions options;
  bool json = false;
};

// Throws t6::Error for any mistake in the command line.
PrepareCommand parse_options(const std::vector<std::string>& args) {
  const ParsedArgs a("prepare", args,
                     {{"--input", true, true}, {"--tokenizer"}, {"--out"}, {"--val-fraction"}, {"--doc-separator"},
                      {"--shard-tokens"}, {"--threads"}, {"--json", false}});
  PrepareCommand command;
  PrepareOptions& options = command.options;
  const char* const see_help = "; see t6 prepare --help";
  options.inputs = a.all("--input");
  T6_CHECK(!options.inputs.empty(), "missing --input PATH...", see_help);
  T6_CHECK(a.has("--tokenizer"), "missing --tokenizer byte|gpt2; see t6 prepare --help");
  options.tokenizer = tokenizer_kind_names().parse(a.get("--tokenizer"), "--tokenizer");
  options.out_dir = a.get("--out");
  options.val_fraction = a.get_double("--val-fraction", options.val_fraction);
  if (a.has("--doc-separator")) options.doc_separator = a.get("--doc-separator");
  options.shard_tokens = a.get_int("--shard-tokens", options.shard_tokens);
  const int64_t threads = a.get_int("--threads", 0);
  command.json = a.has("--json");

  T6_CHECK(!options.out_dir.empty(), "missing --out DIR", see_help);
  T6_CHECK(options.val_fraction >= 0.0 && options.val_fraction < 1.0,
           "--val-fraction must be in [0, 1), got ", a.get("--val-fraction"));
  T6_CHECK(options.shard_tokens >= 1 && options.shard_tokens <= INT32_MAX,
           "--shard-tokens must be from 1 to ", INT32_MAX, ", got ", options.shard_tokens);
  T6_CHECK(threads >= 0 && threads <= kMaxCpuThreads, "--threads must be from 0 (every core) to ", kMaxCpuThreads,
           ", got ", threads);
  options.threads = static_cast<int>(threads);
  return command;
}

void print_summary(const nlohmann::json& summary, std::ostream& out) {
  const auto print_split = [&](const char* label, const nlohmann::json& split) {
    out << "  " << label << split["documents"].get<size_t>() << " documents, " << split["tokens"].get<int64_t>()
        << " tokens, " << split["shards"].get<size_t>() << " shard(s)\n";
  };
  out << "prepared " << summary["out_dir"].get<std::string>() << " from " << summary["input_files"].get<size_t>()
      << " file(s) with the " << summary["tokenizer"].get<std::string>() << " tokenizer ("
      << summary["vocab_size"].get<int64_t>() << " ids)\n";
  print_split("train: ", summary["train"]);
  print_split("val:   ", summary["val"]);
}

}  // namespace

int run_prepare_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (std::ranges::any_of(args, [](const std::string& a) { return a == "-h" || a == "--help"; })) {
    out << prepare_command_help();
    return 0;
  }
  PrepareCommand command;
  try {
    command = parse_options(args);
  } catch (const std::exception& e) {
    err << "t6 prepare: " << e.what() << "\n";
    return 2;
  }
  try {
    const nlohmann::json summary = prepare_shards(command.options, err);
    if (command.json) {
      out << summary.dump() << "\n";
    } else {
      print_summary(summary, out);
    }
    return 0;
  } catch (const std::exception& e) {
    err << "t6 prepare: error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace t6
