// `t6 bench train`: the time of full training steps (forward, backward, clipping, AdamW) of a config's
// model and batch on random tokens, after a warm-up; no data files needed.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <nlohmann/json.hpp>

#include "core/backend.h"
#include "core/memory_summary.h"
#include "nn/parameter_layout.h"
#include "train/cli/cli_args.h"
#include "train/cli/config_from_args.h"
#include "train/cli/commands.h"
#include "train/data/random_batches.h"
#include "train/parallel/world.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace t6 {

namespace {
const char* const kHelp = R"(usage: t6 bench train --config FILE [--steps N] [--warmup N] [--set section.key=value ...]
                     [--device cpu|cuda] [--json] [--profile]

Times N training steps (default 20, after 3 warm-up steps) of the config's model at its batch size
(under mpirun: the data-parallel step, batch_size per rank, reported by rank 0),
sequence length and gradient accumulation, on random tokens, and prints the median ms/step, tokens/s,
model FLOP utilisation, peak resident memory, minor page faults per timed step and the backend's memory
statistics ({"ms_per_step", "tokens_per_s", "mfu", "peak_tflops", "model_flops_per_token",
"peak_rss_mb"} with --json; on CUDA also "peak_device_mb"). MFU counts 6N + 12·L·H·dh·T FLOPs per token
(N parameters) against the device's product rate in the run's precision, measured before the steps
(square products timed for about 0.2 s), so it needs no table of devices. CPU
threads follow train.threads / T6_NUM_THREADS / OMP_NUM_THREADS; T6_CPU_CACHE=0 turns the CPU caching
allocator off (for comparisons).
--profile: also times every kernel of the timed steps (on the GPU: GPU time, with an event pair per
launch; on the CPU: the wall time of each backend call) and prints the time per kernel per step,
largest first, after the totals of the products (gemm) and of every other kernel ("kernels",
"minor_faults_per_step" and "memory" with --json). The step itself runs a little slower while profiling.
)";

rusage usage_now() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage;
}

double peak_rss_mb() { return static_cast<double>(usage_now().ru_maxrss) / 1024.0; }  // Linux reports kilobytes

double mb(size_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

// Seconds for `reps` products C = A·B of n×n matrices of `dtype` (bfloat16 with a float32 C), after one
// untimed product (library start-up, kernel selection).
double product_seconds(Backend& device, Device where, DType dtype, int64_t n, int64_t reps) {
  const Tensor a = ones({n, n}, dtype, where), b = ones({n, n}, dtype, where);
  Tensor c = empty({n, n}, DType::F32, where);
  Backend::Gemm g;
  g.m = g.n = g.k = g.lda = g.ldb = g.ldc = n;
  device.gemm(g, a, b, c);
  device.synchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < reps; ++i) device.gemm(g, a, b, c);
  device.synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The device's product rate in FLOP/s, measured: square products of doubling size until one takes 5 ms
// (at most 8192), then that size repeated for about 0.1 s, three times, keeping the fastest (on a
// shared CPU one round can lose half its time to another process, and MFU would read above 100%).
// The yardstick of MFU, in the run's precision (tf32 follows the backend's switch, which the trainer
// has set).
double measured_peak_flops(Backend& device, Device where, DType dtype) {
  int64_t n = 256;
  double seconds = product_seconds(device, where, dtype, n, 1);
  while (seconds < 0.005 && n < 8192) seconds = product_seconds(device, where, dtype, n *= 2, 1);
  const int64_t reps = std::max<int64_t>(1, static_cast<int64_t>(0.1 / seconds));
  double fastest = product_seconds(device, where, dtype, n, reps);
  for (int round = 1; round < 3; ++round) fastest = std::min(fastest, product_seconds(device, where, dtype, n, reps));
  return 2.0 * static_cast<double>(n * n * n * reps) / fastest;
}

// The kernels of a profile, per step (the totals cover every timed step).
nlohmann::json kernels_per_step(Backend& device, int64_t steps) {
  nlohmann::json kernels = nlohmann::json::array();
  for (const Backend::KernelTime& k : device.kernel_times()) {
    kernels.push_back({{"kernel", k.kernel},
                       {"ms_per_step", k.ms / static_cast<double>(steps)},
                       {"calls_per_step", static_cast<double>(k.calls) / static_cast<double>(steps)}});
  }
  return kernels;
}

// One row of the profile table.
void print_profile_row(std::ostream& out, double ms, double calls, double total, const std::string& what) {
  char line[64];
  std::snprintf(line, sizeof line, "%6.1f%% %9.3f ms %7.0f calls  ", 100.0 * ms / total, ms, calls);
  out << line << what << "\n";
}

// The profile as a table, largest first, after a line that splits the step: products (gemm), the other
// kernels, and what ran outside any kernel (the autograd graph, the host's bookkeeping, idle time); the
// table opens with the totals of the products and of the rest (the non-GEMM time).
void print_profile(std::ostream& out, const nlohmann::json& kernels, double step_ms) {
  double total = 0, products = 0, calls = 0, product_calls = 0;
  for (const auto& k : kernels) {
    const bool gemm = k["kernel"].get<std::string>().rfind("gemm", 0) == 0;
    total += k["ms_per_step"].get<double>();
    calls += k["calls_per_step"].get<double>();
    if (gemm) products += k["ms_per_step"].get<double>(), product_calls += k["calls_per_step"].get<double>();
  }
  char line[256];
  std::snprintf(line, sizeof line,
                "time per step by kernel: %.1f ms of the mean %.1f ms step (gemm %.1f ms, other kernels %.1f ms, "
                "outside kernels %.1f ms)\n",
                total, step_ms, products, total - products, std::max(0.0, step_ms - total));
  out << line;
  print_profile_row(out, products, product_calls, total, "[total of the products: every gemm]");
  print_profile_row(out, total - products, calls - product_calls, total, "[total of the non-GEMM kernels]");
  for (const auto& k : kernels) {
    const double ms = k["ms_per_step"].get<double>();
    if (ms < 0.005 * total) continue;
    print_profile_row(out, ms, k["calls_per_step"].get<double>(), total, k["kernel"].get<std::string>());
  }
}

}  // namespace

int run_bench_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    out << kHelp;
    return 0;
  }
  T6_CHECK(!args.empty() && args[0] == "train", "the only benchmark is \"train\"; see t6 bench --help");
  const ParsedArgs a("bench train", std::vector<std::string>(args.begin() + 1, args.end()),
                     {{"--config"}, {"--steps"}, {"--warmup"}, {"--set", true, true}, {"--device"}, {"--json", false},
                      {"--profile", false}, {"--help", false}});
  if (a.has("--help")) {
    out << kHelp;
    return 0;
  }
  T6_CHECK(a.has("--config"), "t6 bench train needs --config FILE");
  const TrainConfig config = config_from_args(a);
  const int64_t steps = a.get_int("--steps", 20), warmup = a.get_int("--warmup", 3);
  T6_CHECK(steps >= 1 && warmup >= 0, "--steps must be ≥ 1 and --warmup ≥ 0");
  const TrainSection& t = config.train;
  // Under mpirun each rank times the data-parallel step on batches of its own; rank 0 reports.
  Communicator* group = join_training_group(t.device, t.threads);
  const uint64_t seed = t.seed + static_cast<uint64_t>(group ? group->rank() : 0);
  Trainer trainer(config, std::make_unique<RandomBatches>(t.batch_size, t.seq_len, config.model.vocab_size, seed), group);
  Backend& device = backend(config.train.device);
  const DType product_dtype = t.dtype == Precision::BF16 && device.multiplies_bf16() ? DType::BF16 : DType::F32;
  const double peak_flops = measured_peak_flops(device, t.device, product_dtype);
  std::vector<double> ms;
  const bool profile = a.has("--profile");
  long faults = 0;  // minor page faults during the timed steps
  for (int64_t i = 0; i < warmup + steps; ++i) {
    if (i == warmup) {
      device.set_kernel_timing(profile);
      faults = -usage_now().ru_minflt;
    }
    const StepResult step = trainer.step();
    if (i >= warmup) ms.push_back(1000.0 * step.seconds);
  }
  faults += usage_now().ru_minflt;
  if (group && group->rank() != 0) return 0;
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  const int64_t ranks = group ? group->size() : 1;  // tokens of every rank: the global batch's
  const double tokens_per_s = static_cast<double>(ranks * t.batch_size * t.seq_len * t.grad_accum) / (median / 1000.0);
  const double faults_per_step = static_cast<double>(faults) / static_cast<double>(steps);
  const Backend::MemoryStats memory = device.memory_stats();
  const double flops_per_token = training_flops_per_token(config.model, t.seq_len);
  const double mfu = tokens_per_s * flops_per_token / (peak_flops * static_cast<double>(ranks));
  nlohmann::json result = {{"ms_per_step", median}, {"tokens_per_s", tokens_per_s}, {"mfu", mfu},
                           {"peak_tflops", peak_flops / 1e12}, {"model_flops_per_token", flops_per_token},
                           {"peak_rss_mb", peak_rss_mb()}};
  if (config.train.device != Device::CPU) result["peak_device_mb"] = mb(memory.peak_bytes);
  if (profile) {
    result["kernels"] = kernels_per_step(device, steps);
    device.set_kernel_timing(false);
    result["minor_faults_per_step"] = faults_per_step;
    result["memory"] = {{"current_mb", mb(memory.current_bytes)}, {"peak_mb", mb(memory.peak_bytes)},
                        {"reserved_mb", mb(memory.reserved_bytes)}};
  }
  if (a.has("--json")) {
    out << result.dump() << "\n";
    return 0;
  }
  err << "model " << trainer.model().parameter_count() << " parameters on " << device.describe() << "; batch "
      << t.batch_size << "x" << t.seq_len << " x" << t.grad_accum << " accumulation" << (ranks > 1 ? cat(" on each of ", ranks, " ranks") : "")
      << ", " << steps << " timed steps\n";
  out << "median " << median << " ms/step | " << tokens_per_s << " tokens/s | MFU " << 100.0 * mfu
      << "% of a measured " << peak_flops / 1e12 << " TFLOP/s (" << dtype_name(product_dtype) << " products, "
      << flops_per_token / 1e9 << " GFLOP per token) | peak RSS " << peak_rss_mb() << " MB | " << faults_per_step
      << " minor faults/step";
  if (result.contains("peak_device_mb")) out << " | peak device " << result["peak_device_mb"].get<double>() << " MB";
  out << "\nmemory on " << device_name(config.train.device) << ": " << memory_summary(memory) << "\n";
  // The kernel totals are means over the timed steps, so the step they are split from is the mean too.
  if (profile)
    print_profile(out, result["kernels"], std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(steps));
  return 0;
}

}  // namespace t6
