// Replays every input of the fuzz corpus (tests/fuzz/corpus/<target>/: the seeds, and each input a
// fuzzing campaign found that crashed or hung t6 before it was fixed) through its target, so a
// regression fails here, in CI, without a fuzzing campaign.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "fuzz/fuzz_target.h"

namespace {

using Target = int (*)(const uint8_t*, size_t);

void replay(const char* name, Target target) {
  const std::filesystem::path dir = std::filesystem::path(T6_SOURCE_DIR) / "tests/fuzz/corpus" / name;
  REQUIRE_MESSAGE(std::filesystem::is_directory(dir), dir.string());
  int inputs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    INFO(entry.path().string());
    CHECK(target(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) == 0);
    ++inputs;
  }
  CHECK(inputs > 0);
}

}  // namespace

TEST_CASE("fuzz corpus replays: safetensors reader") { replay("safetensors", t6::fuzz::safetensors); }
TEST_CASE("fuzz corpus replays: token-shard reader") { replay("token_shard", t6::fuzz::token_shard); }
TEST_CASE("fuzz corpus replays: config files") { replay("config", t6::fuzz::config); }
TEST_CASE("fuzz corpus replays: GPT-2 vocabulary readers") { replay("gpt2_vocab", t6::fuzz::gpt2_vocab); }
TEST_CASE("fuzz corpus replays: command-line parser") { replay("command_line", t6::fuzz::command_line); }
