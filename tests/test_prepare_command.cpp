// `t6 prepare` end to end on small files in a temporary directory: the shards it writes (byte and GPT-2
// tokenizers), documents and the validation split, shard sizes, stale shards, and its error paths.
#include <doctest/doctest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data_test_support.h"
#include "train/cli/prepare_command.h"
#include "train/data/token_shards.h"
#include "train/data/tokenizer.h"

using t6::testing::TempDir;

namespace {

using Run = t6::testing::CommandResult;

Run prepare(const std::vector<std::string>& args) { return t6::testing::run_captured(t6::run_prepare_command, args); }

// The tokens of a shard as the bytes they stand for under the byte tokenizer.
std::string shard_text(const std::string& path) {
  const std::vector<uint16_t> tokens = t6::read_token_shard(path, 256);
  return std::string(tokens.begin(), tokens.end());
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("prepare: byte tokenizer, one document per file, the last file held out") {
  TempDir dir;
  std::filesystem::create_directory(dir / "in");
  dir.write("in/b.txt", "beta\n");  // directories expand to their files sorted by name
  dir.write("in/a.txt", "alpha\n");
  const Run run = prepare({"--input", dir / "in", "--tokenizer", "byte", "--out", dir / "out", "--json"});
  REQUIRE(run.status == 0);
  CHECK(run.err == "");

  const nlohmann::json summary = nlohmann::json::parse(run.out);
  CHECK(summary["tokenizer"] == "byte");
  CHECK(summary["vocab_size"] == 256);
  CHECK(summary["input_files"] == 2);
  CHECK(summary["train"]["documents"] == 1);
  CHECK(summary["train"]["tokens"] == 6);
  CHECK(summary["train"]["files"] == std::vector<std::string>{dir / "out/train_000000.bin"});
  CHECK(summary["val"]["documents"] == 1);
  CHECK(summary["val"]["shards"] == 1);
  CHECK(shard_text(dir / "out/train_000000.bin") == "alpha\n");
  CHECK(shard_text(dir / "out/val_000000.bin") == "beta\n");
  CHECK(nlohmann::json::parse(std::ifstream(dir / "out/prepare.json")) == summary);
}

TEST_CASE("prepare: --doc-separator, --val-fraction and --shard-tokens") {
  TempDir dir;
  // three documents of 16, 4 and 6 bytes; the separator line may end in \r\n
  const std::string fortunes = dir.write("fortunes", "one one one one\n%\ntwo\n%\r\nthree\n%\n");
  const Run run = prepare({"--input", fortunes, "--tokenizer", "byte", "--out", dir / "out", "--doc-separator", "%",
                           "--val-fraction", "0.3", "--shard-tokens", "5"});
  REQUIRE(run.status == 0);
  // validation takes documents from the end until they hold >= 30% of 26 tokens: "three\n" (6) is not
  // enough, "two\n" + "three\n" (10) is; documents in a split are joined by a newline
  CHECK(contains(run.out, "train: 1 documents, 16 tokens, 4 shard(s)"));
  CHECK(contains(run.out, "val:   2 documents, 11 tokens, 3 shard(s)"));
  CHECK(shard_text(dir / "out/train_000000.bin") == "one o");
  CHECK(shard_text(dir / "out/train_000003.bin") == "\n");
  std::string val;
  for (const char* shard : {"out/val_000000.bin", "out/val_000001.bin", "out/val_000002.bin"})
    val += shard_text(dir / shard);
  CHECK(val == "two\n\nthree\n");

  // a second run with bigger shards deletes the shards it no longer writes
  const Run again = prepare({"--input", fortunes, "--tokenizer", "byte", "--out", dir / "out", "--doc-separator", "%",
                             "--val-fraction", "0"});
  REQUIRE(again.status == 0);
  CHECK(contains(again.out, "train: 3 documents, 28 tokens, 1 shard(s)"));
  CHECK(contains(again.out, "val:   0 documents, 0 tokens, 0 shard(s)"));
  CHECK(contains(again.err, "removed 6 shard(s)"));
  CHECK(shard_text(dir / "out/train_000000.bin") == "one one one one\n\ntwo\n\nthree\n");
  CHECK_FALSE(std::filesystem::exists(dir / "out/train_000001.bin"));
  CHECK_FALSE(std::filesystem::exists(dir / "out/val_000000.bin"));
}

TEST_CASE("prepare: a single document has no validation split, with a warning") {
  TempDir dir;
  const std::string only = dir.write("only.txt", "just one");
  const Run run = prepare({"--input", only, "--tokenizer", "byte", "--out", dir / "out"});
  REQUIRE(run.status == 0);
  CHECK(contains(run.err, "no validation split"));
  CHECK(shard_text(dir / "out/train_000000.bin") == "just one");
}

TEST_CASE("prepare: gpt2 tokenizer puts end-of-text before each document" * t6::testing::needs_gpt2_vocab()) {
  // prepare finds the files the usual way
  ::setenv("T6_GPT2_DIR", t6::testing::gpt2_vocab_dir_for_tests().c_str(), 1);
  TempDir dir;
  const Run run = prepare({"--input", dir.write("1.txt", "Hello world"), dir.write("2.txt", " the\n"), "--tokenizer",
                           "gpt2", "--out", dir / "out", "--json"});
  ::unsetenv("T6_GPT2_DIR");
  REQUIRE(run.status == 0);
  CHECK(nlohmann::json::parse(run.out)["vocab_size"] == 50257);
  CHECK(t6::read_token_shard(dir / "out/train_000000.bin", 50257) == std::vector<uint16_t>{50256, 15496, 995});
  CHECK(t6::read_token_shard(dir / "out/val_000000.bin", 50257) == std::vector<uint16_t>{50256, 262, 198});
}

TEST_CASE("prepare: --help, and bad input gives one clear message and a non-zero status") {
  const Run help = prepare({"--help"});
  CHECK(help.status == 0);
  CHECK(help.out.starts_with("usage: t6 prepare"));
  CHECK(help.out == t6::prepare_command_help());

  TempDir dir;
  const std::string text = dir.write("text.txt", "some text\n");
  const std::string out = dir / "out";
  const auto check_error = [](const Run& run, int status, const std::string& expected) {
    CHECK(run.status == status);
    CHECK(run.out == "");
    CHECK(contains(run.err, expected));
    CHECK(run.err.starts_with("t6 prepare: "));
  };
  check_error(prepare({"--input", dir / "missing.txt", "--tokenizer", "byte", "--out", out}), 1,
              "input '" + dir / "missing.txt" + "' does not exist");
  check_error(prepare({"--input", text, "--tokenizer", "bpe", "--out", out}), 2, "--tokenizer must be one of \"byte\", \"gpt2\", got \"bpe\"");
  check_error(prepare({"--input", text, "--tokenizer", "byte", "--out", out, "--frobnicate"}), 2,
              "unknown argument \"--frobnicate\"");
  check_error(prepare({"--input", text, "--tokenizer", "byte", "--out", out, "--val-fraction", "1"}), 2,
              "--val-fraction must be in [0, 1)");
  check_error(prepare({"--input", text, "--tokenizer", "byte", "--out", out, "--val-fraction", "-0.1"}), 2,
              "--val-fraction must be in [0, 1)");
  check_error(prepare({"--input", text, "--tokenizer", "byte", "--out", out, "--val-fraction", "1%"}), 2,
              "--val-fraction expects a number");
  check_error(prepare({"--input", text, "--tokenizer", "byte", "--out", out, "--shard-tokens", "0"}), 2,
              "--shard-tokens must be from 1 to");
  check_error(prepare({"--input", text, "--tokenizer", "byte"}), 2, "missing --out");
  check_error(prepare({"--input", text, "--tokenizer", "byte", "--out"}), 2, "--out needs a value");
  check_error(prepare({"--input", text, "--tokenizer", "byte", "--out", text + "/sub"}), 1,
              "cannot create output directory '" + text + "/sub'");
  check_error(prepare({"--input", dir.write("empty.txt", ""), "--tokenizer", "byte", "--out", out}), 1, "no text");
}
