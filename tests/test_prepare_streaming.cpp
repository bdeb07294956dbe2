// `t6 prepare` streams: its output does not depend on how the text is cut into chunks or on the number
// of tokenizing threads, and equals the tokens of each whole document; the cuts it makes are GPT-2
// pre-token boundaries, which split the pre-tokens exactly.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "core/random.h"
#include "data_test_support.h"
#include "train/data/gpt2_tokenizer.h"
#include "train/data/prepare.h"
#include "train/data/token_shards.h"

using t6::testing::TempDir;

namespace {

// Text that exercises the pre-tokenizer: words, contractions, numbers, punctuation, runs of spaces and
// newlines, CRLF, multi-byte characters (letters, an ideographic space, an emoji) and invalid UTF-8.
std::string mixed_text(uint64_t seed, int pieces) {
  static const char* const kPieces[] = {"word", " the", "  spaced", "\n", "\n\n", "\r\n", "it's", " we'll", "'ve",
                                        " 12345", "3.14", "!?", " ...", "\t", "caf\xc3\xa9", " \xe6\x97\xa5\xe6\x9c\xac",
                                        "\xe3\x80\x80", "\xf0\x9f\x98\x80", "\xff", "\xe2\x82", " ", "x", "%\n"};
  t6::Generator gen(seed);
  std::string text;
  for (int i = 0; i < pieces; ++i) text += kPieces[gen.below(std::size(kPieces))];
  return text;
}

// Every file prepare wrote (shards and summary), by name.
std::map<std::string, std::string> output_files(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream file(entry.path(), std::ios::binary);
    std::ostringstream bytes;
    bytes << file.rdbuf();
    files[entry.path().filename().string()] = bytes.str();
  }
  return files;
}

// Runs prepare over `inputs` into a fresh directory and returns what it wrote.
std::map<std::string, std::string> prepare(const std::vector<std::string>& inputs, t6::TokenizerKind tokenizer,
                                           std::optional<std::string> separator, int64_t chunk_bytes, int threads,
                                           const std::string& out) {
  t6::PrepareOptions options;
  options.inputs = inputs;
  options.tokenizer = tokenizer;
  options.out_dir = out;
  options.val_fraction = 0.2;
  options.doc_separator = std::move(separator);
  options.shard_tokens = 97;
  options.chunk_bytes = chunk_bytes;
  options.threads = threads;
  std::ostringstream err;
  t6::prepare_shards(options, err);
  std::filesystem::rename(out, out + ".done");  // the next run starts from an empty directory
  auto files = output_files(out + ".done");
  std::filesystem::remove_all(out + ".done");
  return files;
}

}  // namespace

TEST_CASE("gpt2 pre-tokens: a boundary splits the pre-tokens of a text exactly") {
  int boundaries = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    const std::string text = mixed_text(seed, 60);
    const std::vector<std::string> whole = t6::gpt2_pretokens(text);
    for (size_t pos = 0; pos <= text.size(); ++pos) {
      if (!t6::is_gpt2_pretoken_boundary(text, pos)) continue;
      ++boundaries;
      std::vector<std::string> parts = t6::gpt2_pretokens(text.substr(0, pos));
      const std::vector<std::string> right = t6::gpt2_pretokens(text.substr(pos));
      parts.insert(parts.end(), right.begin(), right.end());
      CHECK_MESSAGE(parts == whole, "seed ", seed, ", cut at ", pos);
    }
  }
  CHECK(boundaries > 500);
  // not boundaries: inside white space, before a non-space, after an invalid byte, at either end
  CHECK_FALSE(t6::is_gpt2_pretoken_boundary("a  b", 2));
  CHECK_FALSE(t6::is_gpt2_pretoken_boundary("ab", 1));
  CHECK_FALSE(t6::is_gpt2_pretoken_boundary("\xff\nb", 1));
  CHECK_FALSE(t6::is_gpt2_pretoken_boundary("a\n", 0));
  CHECK_FALSE(t6::is_gpt2_pretoken_boundary("a\n", 2));
  CHECK(t6::is_gpt2_pretoken_boundary("a\nb", 1));
  CHECK(t6::is_gpt2_pretoken_boundary("caf\xc3\xa9 b", 5));
  CHECK_FALSE(t6::is_gpt2_pretoken_boundary("\xe3\x80\x80 b", 3));  // after an ideographic space
}

TEST_CASE("prepare: the shards do not depend on chunk size or thread count") {
  TempDir dir;
  std::vector<std::string> inputs;
  for (int f = 0; f < 3; ++f) inputs.push_back(dir.write("in" + std::to_string(f) + ".txt", mixed_text(100 + f, 400)));
  std::vector<std::pair<t6::TokenizerKind, std::optional<std::string>>> cases = {
      {t6::TokenizerKind::Byte, std::nullopt}, {t6::TokenizerKind::Byte, "%"}};
  const bool gpt2 = t6::testing::find_gpt2_vocab_dir_for_tests().has_value();
  if (gpt2) {
    ::setenv("T6_GPT2_DIR", t6::testing::find_gpt2_vocab_dir_for_tests()->c_str(), 1);
    cases.push_back({t6::TokenizerKind::GPT2, std::nullopt});
    cases.push_back({t6::TokenizerKind::GPT2, "%"});
  }
  for (const auto& tokenizer_and_separator : cases) {
    const t6::TokenizerKind tokenizer = tokenizer_and_separator.first;  // not a structured binding: CAPTURE's
    const std::optional<std::string>& separator = tokenizer_and_separator.second;  // lambda must capture it
    CAPTURE(static_cast<int>(tokenizer));
    CAPTURE(separator.has_value());
    // One chunk per document on one thread: each document tokenized whole, as before streaming.
    const auto reference = prepare(inputs, tokenizer, separator, int64_t{1} << 30, 1, dir / "out");
    CHECK(reference.count("train_000001.bin") == 1);
    CHECK(reference.count("val_000000.bin") == 1);
    for (const int64_t chunk_bytes : {1, 2, 7, 50, 333}) {
      for (const int threads : {1, 2, 5}) {
        CAPTURE(chunk_bytes);
        CAPTURE(threads);
        CHECK(prepare(inputs, tokenizer, separator, chunk_bytes, threads, dir / "out") == reference);
      }
    }
  }
  if (gpt2) ::unsetenv("T6_GPT2_DIR");
}

TEST_CASE("prepare: gpt2 shards are end-of-text and the tokens of each whole file" * t6::testing::needs_gpt2_vocab()) {
  const std::string vocab = t6::testing::gpt2_vocab_dir_for_tests();
  const t6::Gpt2Tokenizer tokenizer(vocab);
  TempDir dir;
  t6::PrepareOptions options;
  std::vector<uint16_t> expected;
  for (int f = 0; f < 3; ++f) {
    const std::string text = mixed_text(200 + f, 3000);
    options.inputs.push_back(dir.write("in" + std::to_string(f) + ".txt", text));
    expected.push_back(50256);
    for (const int32_t id : tokenizer.encode(text)) expected.push_back(static_cast<uint16_t>(id));
  }
  options.tokenizer = t6::TokenizerKind::GPT2;
  options.out_dir = dir / "out";
  options.val_fraction = 0;
  options.chunk_bytes = 64;
  options.threads = 2;
  ::setenv("T6_GPT2_DIR", vocab.c_str(), 1);
  std::ostringstream err;
  const nlohmann::json summary = t6::prepare_shards(options, err);
  ::unsetenv("T6_GPT2_DIR");
  CHECK(summary["train"]["tokens"] == expected.size());
  CHECK(t6::read_token_shard(dir / "out/train_000000.bin", 50257) == expected);
}
