// The long-context showcase: the cache footprint of the model and of MHA, GQA and MQA over the same
// heads (hand-computed numbers for the paper's small T6), the capacity arithmetic, and a run of
// `bench_decode --capacity` on a tiny model, with the errors of its flags.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include "data_test_support.h"
#include "nn/cache_footprint.h"
#include "nn/kv_cache.h"
#include "nn/parameter_layout.h"

using namespace t6;
using t6::testing::TempDir;

TEST_CASE("cache footprint: the paper's small T6 against MHA, GQA and MQA over its 34 heads") {
  const std::vector<CacheVariant> v = same_heads_variants(ModelConfig{});  // H=34, dh=64, R=2, L=12
  REQUIRE(v.size() == 4);
  CHECK(v[0].name == "TPA factors (tpa, this model)");
  CHECK(v[1].name == "MHA, 34 heads");
  CHECK(v[2].name == "GQA, 2 kv heads");  // the largest divisor of 34 not above 34/4
  CHECK(v[3].name == "MQA, 1 kv head");
  // numbers per token and layer: 2R(H + dh) = 2·2·98; 2·H·dh = 2·34·64; 2·2·64; 2·64
  const std::vector<int64_t> numbers = {392, 4352, 256, 128};
  for (size_t i = 0; i < v.size(); ++i) {
    INFO(v[i].name);
    CHECK(v[i].numbers_per_token_layer() == numbers[i]);
    CHECK(v[i].bytes_per_token_layer(DType::BF16) == 2 * numbers[i]);
    CHECK(v[i].bytes_per_token_layer(DType::F32) == 4 * numbers[i]);
    CHECK(v[i].bytes_per_token(DType::BF16) == 12 * 2 * numbers[i]);
    // what the cache allocates for one token of one row agrees, for every variant
    CHECK(KVCache(v[i].config, 1, 1).bytes_per_token() == v[i].bytes_per_token(DType::F32));
  }
  CHECK(v[0].bytes_per_token(DType::BF16) == 9408);
  CHECK(v[1].bytes_per_token(DType::BF16) == 104448);

  CHECK(same_heads_variants(ModelConfig{}, 17)[2].numbers_per_token_layer() == 2 * 17 * 64);
  CHECK_THROWS_WITH_AS(same_heads_variants(ModelConfig{}, 3), doctest::Contains("3 does not"), Error);
  ModelConfig gqa;
  gqa.attention = AttentionKind::GQA, gqa.n_kv_head = 17;
  const std::vector<CacheVariant> own = same_heads_variants(gqa);
  CHECK(own[0].name == "gqa (this model)");
  CHECK(own[2].name == "GQA, 17 kv heads");  // the model's own groups
}

TEST_CASE("capacity: the largest batch and the longest context that fit, weights counted in") {
  // The paper's small T6: 124,342,272 parameters (float32 weights), 9,408 cache bytes per token in
  // bfloat16, a float32 logits row of 50,304 numbers; 139 GiB.
  CHECK(parameter_total(ModelConfig{}) == 124342272);
  const DecodeMemory tpa(ModelConfig{}, DType::F32, DType::BF16);
  CHECK(tpa.weight_bytes == 4 * 124342272);
  CHECK(tpa.cache_bytes_per_token == 9408);
  CHECK(tpa.logits_bytes == 4 * 50304);
  const int64_t memory = 139LL << 30;
  CHECK(tpa.per_sequence(32768) == 32768LL * 9408 + 4 * 50304);
  CHECK(tpa.max_batch(memory, 32768) == 482);    // (memory − weights) / per sequence, rounded down
  CHECK(tpa.max_batch(memory, 131072) == 120);
  CHECK(tpa.max_context(memory, 1) == 15811282);  // ((memory − weights) − logits) / 9,408
  CHECK(tpa.total(482, 32768) <= memory);
  CHECK(tpa.total(483, 32768) > memory);

  // MHA over the same 34 heads: 175,472,640 parameters, 104,448 cache bytes per token
  const DecodeMemory mha(same_heads_variants(ModelConfig{})[1].config, DType::F32, DType::BF16);
  CHECK(mha.weight_bytes == 4 * 175472640LL);
  CHECK(mha.max_batch(memory, 32768) == 43);
  CHECK(mha.max_batch(memory, 131072) == 10);
  CHECK(mha.max_context(memory, 1) == 1422219);

  CHECK(tpa.max_batch(tpa.weight_bytes, 1) == 0);  // nothing left after the weights
  CHECK(tpa.max_batch(1000, 1) == 0);              // not even the weights
  CHECK(tpa.max_context(1000, 1) == 0);
  CHECK_THROWS_WITH_AS(tpa.max_context(memory, 0), doctest::Contains("at least one sequence"), Error);
}

namespace {

struct BenchRun {
  int status;
  std::string output;  // stdout and stderr
};

BenchRun run_bench(const std::string& args) {
  const std::string bench = (std::filesystem::path(T6_BINARY).parent_path() / "bench_decode").string();
  FILE* pipe = ::popen((bench + " " + args + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  while (const size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

}  // namespace

TEST_CASE("bench_decode --capacity on a tiny model: the table, a prefill and a synthetic decode beyond "
          "block_size, and the flags' errors") {
  TempDir dir;
  // H=8, dh=16, R=1: the factors hold 2·1·(8 + 16) = 48 numbers per token and layer, MHA 2·8·16 = 256
  const nlohmann::json model = {{"vocab_size", 64}, {"n_layer", 2}, {"n_embd", 32}, {"n_head", 8},
                                {"head_dim", 16},   {"q_rank", 2},  {"rank", 1},    {"block_size", 16}};
  const std::string config = dir.write("tiny.json", model.dump());
  // 1 MiB: TPA (130,816 weight bytes, 64·384 + 256 per sequence) fits 36 sequences of 64 tokens,
  // MHA (204,544, 64·2,048 + 256) 6, so the measured batch is 8
  const std::string common = "--capacity --config " + config + " --memory-gib 0.0009765625 --contexts 64 --new-tokens 3";

  const BenchRun prefill = run_bench(common + " --allow-beyond-block-size");
  INFO(prefill.output);
  CHECK(prefill.status == 0);
  CHECK(prefill.output.find("### KV cache capacity in 0.0 GiB: L=2 d=32 H=8 dh=16 RQ=2 R=1 V=64, float32 cache") !=
        std::string::npos);
  CHECK(prefill.output.find("| TPA factors (tpa, this model) | 48 | 384 bytes | 1.00x | 0.0 GiB | 36 |") !=
        std::string::npos);
  CHECK(prefill.output.find("| MHA, 8 heads | 256 | 2048 bytes | 5.33x | 0.0 GiB | 6 |") != std::string::npos);
  CHECK(prefill.output.find("| GQA, 2 kv heads | 64 | 512 bytes |") != std::string::npos);
  CHECK(prefill.output.find("| MQA, 1 kv head | 32 | 256 bytes |") != std::string::npos);
  CHECK(prefill.output.find("| 8 | 64 | prefill |") != std::string::npos);
  CHECK(prefill.output.find("SYNTHETIC") == std::string::npos);

  const BenchRun synthetic = run_bench(common + " --allow-beyond-block-size --synthetic-cache --batches 2");
  INFO(synthetic.output);
  CHECK(synthetic.status == 0);
  CHECK(synthetic.output.find("Cache fill: SYNTHETIC") != std::string::npos);
  CHECK(synthetic.output.find("| 2 | 64 | synthetic |") != std::string::npos);

  const BenchRun table = run_bench(common + " --table-only");  // no decode, so no positions beyond block_size
  CHECK(table.status == 0);
  CHECK(table.output.find("| 8 | 64 |") == std::string::npos);

  const BenchRun refused = run_bench(common);
  CHECK(refused.status == 1);
  CHECK(refused.output.find("context 64 and 3 new tokens go beyond the model's block_size of 16; pass "
                            "--allow-beyond-block-size") != std::string::npos);
  const BenchRun no_memory = run_bench("--capacity --config " + config + " --table-only");
  CHECK(no_memory.status == 1);
  CHECK(no_memory.output.find("--capacity on the CPU needs --memory-gib G") != std::string::npos);
  const BenchRun too_big = run_bench(common + " --allow-beyond-block-size --batches 40");
  CHECK(too_big.status == 1);
  CHECK(too_big.output.find("batch 40 at context 64 needs") != std::string::npos);
}
