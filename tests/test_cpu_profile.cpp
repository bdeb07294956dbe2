// The CPU backend's kernel timing (core/cpu/kernel_timer.h), which `t6 bench train --profile` prints:
// each backend call counted under its method's name (gemm under its dtype and sizes) while timing is
// on, nothing while it is off, and the command's table on the CPU.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/backend.h"
#include "nn/parameter_layout.h"
#include "train/cli/commands.h"

using namespace t6;

namespace {

const Backend::KernelTime* find_kernel(const std::vector<Backend::KernelTime>& times, const std::string& name) {
  const auto it = std::find_if(times.begin(), times.end(), [&](const auto& k) { return k.kernel == name; });
  return it == times.end() ? nullptr : &*it;
}

}  // namespace

TEST_SUITE("cpu profile") {

TEST_CASE("kernel timing counts every backend call by name while on, and starts afresh when switched on") {
  Backend& cpu = backend(Device::CPU);
  cpu.set_kernel_timing(true);
  const Tensor a = full({8, 16}, 1.0), b = full({16, 4}, 2.0);
  const Tensor c = matmul(a, b);
  cpu.set_kernel_timing(false);
  Tensor ignored = full({3}, 1.0);  // not counted: timing is off
  const std::vector<Backend::KernelTime> times = cpu.kernel_times();
  const Backend::KernelTime* fill = find_kernel(times, "fill");
  REQUIRE(fill != nullptr);
  CHECK(fill->calls == 2);
  CHECK(fill->ms >= 0.0);
  const Backend::KernelTime* gemm = find_kernel(times, "gemm float32 8x4x16");
  REQUIRE(gemm != nullptr);
  CHECK(gemm->calls == 1);
  CHECK(std::is_sorted(times.begin(), times.end(), [](const auto& x, const auto& y) { return x.ms > y.ms; }));
  cpu.set_kernel_timing(true);
  CHECK(cpu.kernel_times().empty());
  cpu.set_kernel_timing(false);
}

TEST_CASE("t6 bench train --profile on the CPU: kernels per step, page faults and memory") {
  const std::filesystem::path config = std::filesystem::temp_directory_path() / "t6_cpu_profile_config.json";
  std::ofstream(config) << R"({"model": {"vocab_size": 256, "n_layer": 1, "n_embd": 16, "n_head": 2, "head_dim": 8,
                                          "q_rank": 2, "rank": 1, "block_size": 8},
                               "train": {"batch_size": 2, "seq_len": 8, "device": "cpu"}})";
  std::ostringstream out, err;
  const std::vector<std::string> args = {"train", "--config", config.string(), "--steps", "2", "--warmup", "1",
                                         "--profile", "--json"};
  REQUIRE(run_bench_command(args, out, err) == 0);
  std::filesystem::remove(config);
  const nlohmann::json j = nlohmann::json::parse(out.str());
  REQUIRE(j["kernels"].is_array());
  std::vector<std::string> names;
  for (const auto& k : j["kernels"]) names.push_back(k["kernel"].get<std::string>());
  CHECK(std::find(names.begin(), names.end(), "adamw_step") != names.end());
  CHECK(std::any_of(names.begin(), names.end(), [](const std::string& n) { return n.rfind("gemm float32", 0) == 0; }));
  CHECK(j["minor_faults_per_step"].get<double>() >= 0.0);
  CHECK(j["memory"]["peak_mb"].get<double>() > 0.0);
  CHECK(j["memory"]["reserved_mb"].get<double>() >= j["memory"]["current_mb"].get<double>());
  // MFU against the CPU's float32 product rate measured at the start
  CHECK(j["peak_tflops"].get<double>() > 0.0);
  const double expected_mfu = j["tokens_per_s"].get<double>() * j["model_flops_per_token"].get<double>() /
                              (j["peak_tflops"].get<double>() * 1e12);
  CHECK(j["mfu"].get<double>() == doctest::Approx(expected_mfu));
}

TEST_CASE("model FLOPs per token are 6N + 12·L·H·dh·T, and the profile table has the non-GEMM total") {
  ModelConfig c;
  c.vocab_size = 256, c.n_layer = 3, c.n_embd = 16, c.n_head = 2, c.head_dim = 8, c.q_rank = 2, c.rank = 1;
  c.block_size = 8;
  CHECK(training_flops_per_token(c, 8) == 6.0 * static_cast<double>(parameter_total(c)) + 12.0 * 3 * 2 * 8 * 8);

  const std::filesystem::path config = std::filesystem::temp_directory_path() / "t6_cpu_profile_text_config.json";
  std::ofstream(config) << R"({"model": {"vocab_size": 256, "n_layer": 1, "n_embd": 16, "n_head": 2, "head_dim": 8,
                                          "q_rank": 2, "rank": 1, "block_size": 8},
                               "train": {"batch_size": 2, "seq_len": 8, "device": "cpu"}})";
  std::ostringstream out, err;
  REQUIRE(run_bench_command({"train", "--config", config.string(), "--steps", "1", "--warmup", "0", "--profile"},
                            out, err) == 0);
  std::filesystem::remove(config);
  CHECK(out.str().find("% of a measured ") != std::string::npos);
  CHECK(out.str().find("TFLOP/s (float32 products") != std::string::npos);
  CHECK(out.str().find("[total of the products: every gemm]") != std::string::npos);
  CHECK(out.str().find("[total of the non-GEMM kernels]") != std::string::npos);
}

}  // TEST_SUITE
