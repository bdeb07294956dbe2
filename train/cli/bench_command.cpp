// `t6 bench train`: the time of full training steps (forward, backward, clipping, AdamW) of a config's
// model and batch on random tokens, after a warm-up; no data files needed.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/backend.h"
#include "train/cli/cli_args.h"
#include "train/cli/config_from_args.h"
#include "train/cli/commands.h"
#include "train/data/random_batches.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace t6 {

namespace {
const char* const kHelp = R"(usage: t6 bench train --config FILE [--steps N] [--warmup N] [--set section.key=value ...]
                     [--device cpu|cuda] [--json] [--profile]

Times N training steps (default 20, after 3 warm-up steps) of the config's model at its batch size,
sequence length and gradient accumulation, on random tokens, and prints the median ms/step, tokens/s
and peak resident memory ({"ms_per_step", "tokens_per_s", "peak_rss_mb"} with --json; on CUDA also
"peak_device_mb"). CPU threads follow train.threads / T6_NUM_THREADS / OMP_NUM_THREADS.
--profile (CUDA): also times every kernel of the timed steps on the GPU and prints the time per
kernel per step, largest first ("kernels" with --json). Timing adds an event pair per launch, so the
step itself runs slower while profiling.
)";

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports kilobytes
}
}  // namespace

int run_bench_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    out << kHelp;
    return 0;
  }
  T6_CHECK(!args.empty() && args[0] == "train", "t6 bench: the only benchmark is \"train\"; see t6 bench --help");
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
  T6_CHECK(steps >= 1 && warmup >= 0, "t6 bench train: --steps must be ≥ 1 and --warmup ≥ 0");
  const TrainSection& t = config.train;
  Trainer trainer(config, std::make_unique<RandomBatches>(t.batch_size, t.seq_len, config.model.vocab_size, t.seed));
  Backend& device = backend(config.train.device);
  std::vector<double> ms;
  const bool profile = a.has("--profile");
  for (int64_t i = 0; i < warmup + steps; ++i) {
    if (profile && i == warmup) device.set_kernel_timing(true);
    const StepResult step = trainer.step();
    if (i >= warmup) ms.push_back(1000.0 * step.seconds);
  }
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  const double tokens_per_s = static_cast<double>(t.batch_size * t.seq_len * t.grad_accum) / (median / 1000.0);
  nlohmann::json result = {{"ms_per_step", median}, {"tokens_per_s", tokens_per_s}, {"peak_rss_mb", peak_rss_mb()}};
  if (config.train.device != Device::CPU)
    result["peak_device_mb"] = static_cast<double>(device.memory_stats().peak_bytes) / (1 << 20);
  if (profile) {
    // Per step: the totals cover all timed steps.
    nlohmann::json kernels = nlohmann::json::array();
    for (const Backend::KernelTime& k : device.kernel_times()) {
      kernels.push_back({{"kernel", k.kernel},
                         {"ms_per_step", k.ms / static_cast<double>(steps)},
                         {"calls_per_step", static_cast<double>(k.calls) / static_cast<double>(steps)}});
    }
    device.set_kernel_timing(false);
    result["kernels"] = kernels;
  }
  if (a.has("--json")) {
    out << result.dump() << "\n";
  } else {
    err << "model " << trainer.model().parameter_count() << " parameters on " << device.describe() << "; batch "
        << t.batch_size << "x" << t.seq_len << " x" << t.grad_accum << " accumulation, " << steps << " timed steps\n";
    out << "median " << median << " ms/step | " << tokens_per_s << " tokens/s | peak RSS " << peak_rss_mb() << " MB";
    if (result.contains("peak_device_mb")) out << " | peak device " << result["peak_device_mb"].get<double>() << " MB";
    out << "\n";
    if (profile) {
      double total = 0;
      for (const auto& k : result["kernels"]) total += k["ms_per_step"].get<double>();
      out << "GPU time per step by kernel (" << total << " ms in all):\n";
      for (const auto& k : result["kernels"]) {
        const double ms = k["ms_per_step"].get<double>();
        if (ms < 0.005 * total) continue;
        char line[256];
        std::snprintf(line, sizeof line, "%6.1f%% %9.3f ms %7.0f calls  ", 100.0 * ms / total, ms,
                      k["calls_per_step"].get<double>());
        out << line << k["kernel"].get<std::string>() << "\n";
      }
    }
  }
  return 0;
}

}  // namespace t6
