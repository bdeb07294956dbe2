// `t6 info`: build details and a model's cost as JSON, and the config key reference that README.md
// shows (generated from the config tables, so the README cannot drift from the keys t6 accepts).
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data_test_support.h"
#include "train/cli/commands.h"
#include "train/train_config.h"

using t6::testing::CommandResult;

namespace {
CommandResult t6_command(const std::vector<std::string>& args) {
  return t6::testing::run_captured(t6::run_command_line, args);
}
}  // namespace

// Regression: --json used to be declared as a flag that takes a value ("--json needs a value").
TEST_CASE("t6 info --json: build details, and a model's parameters and KV cache, as JSON") {
  const CommandResult build = t6_command({"info", "--json"});
  REQUIRE_MESSAGE(build.status == 0, build.err);
  const nlohmann::json b = nlohmann::json::parse(build.out);
  CHECK(b.contains("blas"));
  CHECK(b["cpu_threads"].get<int>() >= 1);

  const CommandResult model = t6_command({"info", "--config", T6_SOURCE_DIR "/configs/paper_small.json", "--json"});
  REQUIRE_MESSAGE(model.status == 0, model.err);
  const nlohmann::json m = nlohmann::json::parse(model.out);
  CHECK(m["parameters"]["total"].get<int64_t>() / 10000 == 12434);  // the paper's 124.34M
  CHECK(m["kv_cache"][0]["numbers_per_token_per_layer"] == 392);    // 2R(H + dh)
}

TEST_CASE("t6 info --keys: every config key once, and README.md shows exactly that table") {
  const CommandResult keys = t6_command({"info", "--keys"});
  REQUIRE_MESSAGE(keys.status == 0, keys.err);
  CHECK(keys.out == t6::TrainConfig::key_reference());
  const size_t key_count = t6::ModelConfig::table().keys().size() + t6::DataConfig::table().keys().size() +
                           t6::TrainSection::table().keys().size() + t6::OptimConfig::table().keys().size();
  CHECK(static_cast<size_t>(std::count(keys.out.begin(), keys.out.end(), '\n')) == 2 + key_count);
  std::ifstream readme(T6_SOURCE_DIR "/README.md");
  std::stringstream text;
  text << readme.rdbuf();
  CHECK_MESSAGE(text.str().find(keys.out) != std::string::npos,
                "README.md's config key table is out of date: paste the output of `t6 info --keys`");
}
