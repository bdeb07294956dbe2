// Helpers shared by the data tests (tokenizers, shards, batch loader, prepare): a temporary directory,
// the message of an expected t6::Error, and where the GPT-2 vocabulary files are (the tests that need
// them are skipped without them).
#pragma once
#include <stdlib.h>

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "nn/model_config.h"
#include "skip_unless.h"
#include "train/data/gpt2_tokenizer.h"

namespace t6::testing {

// A fresh, empty directory for one test, deleted with everything in it when the test ends.
class TempDir {
 public:
  TempDir() {
    std::string name = (std::filesystem::temp_directory_path() / "t6_test_XXXXXX").string();
    if (!::mkdtemp(name.data())) throw std::runtime_error("TempDir: mkdtemp failed");
    path_ = name;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // The path of `name` inside the directory.
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  // Writes `contents` (bytes) to `name` inside the directory and returns its path.
  std::string write(const std::string& name, std::string_view contents) const {
    const std::string file = *this / name;
    std::ofstream(file, std::ios::binary) << contents;
    return file;
  }

 private:
  std::filesystem::path path_;
};

// The message of the t6::Error that `f` throws; fails the test (and returns "") when it throws none.
template <class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("expected a t6::Error");
  return "";
}

// The tiny byte-level model of the training tests: V=256, one layer of d=16, two heads of 8, ranks 2,
// blocks of 16 tokens; 7.3k parameters.
inline ModelConfig tiny_byte_model() {
  ModelConfig m;
  m.vocab_size = 256;
  m.n_layer = 1;
  m.n_embd = 16;
  m.n_head = 2;
  m.head_dim = 8;
  m.q_rank = 2;
  m.rank = 2;
  m.block_size = 16;
  return m;
}

// Random words in lines, from a fixed seed: enough structure (a small alphabet, frequent words) for a
// tiny model to learn something in a few dozen steps.
inline std::string word_text(uint64_t seed, size_t bytes) {
  const char* const words[] = {"the", "quick", "brown", "fox", "jumps", "over", "a",    "lazy",  "dog",
                               "and", "then",  "runs",  "far", "away",  "into", "deep", "green", "woods"};
  std::string text;
  uint64_t state = seed;
  for (int column = 0; text.size() < bytes; ++column) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    text += words[(state >> 33) % 18];
    text += column % 10 == 9 ? "\n" : " ";
  }
  return text;
}

// A t6 command's exit status and both output streams.
struct CommandResult {
  int status;
  std::string out, err;
};

// Runs a command function (t6::run_command_line, t6::run_prepare_command, ...) capturing its output.
template <class Command>
CommandResult run_captured(Command command, const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int status = command(args, out, err);
  return {status, out.str(), err.str()};
}

// The directory with encoder.json and vocab.bpe (where t6 itself looks, then the source tree), or
// nothing when neither holds them. Looked up once, when the first test case registers: tests that set
// or unset T6_GPT2_DIR later change neither which cases are skipped nor where the others read.
inline const std::optional<std::string>& find_gpt2_vocab_dir_for_tests() {
  static const std::optional<std::string> found = [] {
    std::vector<std::string> candidates = gpt2_vocab_dir_candidates();
#ifdef T6_SOURCE_DIR
    candidates.push_back(T6_SOURCE_DIR "/third_party/gpt2");
#endif
    for (const std::string& dir : candidates)
      if (has_gpt2_vocab_files(dir)) return std::optional<std::string>(dir);
    return std::optional<std::string>();
  }();
  return found;
}

// The decorator of every test that reads OpenAI's GPT-2 vocabulary: without the files the case is
// skipped (and says why), never passed. Except in CI (CI=true), which fetches the files: there a
// missing file must fail the run, so the case runs and fails on gpt2_vocab_dir_for_tests().
inline skip_unless needs_gpt2_vocab() {
  const char* ci = std::getenv("CI");
  const bool in_ci = ci != nullptr && std::string_view(ci) == "true";
  return {in_ci || find_gpt2_vocab_dir_for_tests().has_value(),
          "GPT-2 vocabulary files not found; run scripts/fetch_gpt2_vocab.sh (or set T6_GPT2_DIR) to run them"};
}

// The GPT-2 vocabulary directory, inside a case decorated with needs_gpt2_vocab().
inline std::string gpt2_vocab_dir_for_tests() {
  const std::optional<std::string>& dir = find_gpt2_vocab_dir_for_tests();
  REQUIRE_MESSAGE(dir.has_value(), "GPT-2 vocabulary files not found; run scripts/fetch_gpt2_vocab.sh");
  return *dir;
}

}  // namespace t6::testing
