// Streaming data: the resident memory of training on token shards far larger than the model, which the
// memory-mapped batch loader keeps flat. Writes `GB` of random byte-vocabulary shards into DIR (unless
// DIR already holds train_*.bin shards), trains STEPS steps of the config's model on them (demo.json:
// the demo model), then reads every window of the data once, and prints the peak and current resident
// memory after each phase. Deletes the shards it wrote.
// usage: build/bench_streaming DIR [GB=4] [STEPS=20] [CONFIG=configs/demo.json]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "core/random.h"
#include "train/data/batch_loader.h"
#include "train/data/token_shards.h"
#include "train/train_config.h"
#include "train/trainer.h"

using namespace t6;
namespace fs = std::filesystem;

namespace {

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports kilobytes
}

double current_rss_mb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1.0;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void report(const char* phase, double seconds) {
  std::printf("%-34s %7.1f s   peak RSS %7.1f MB   current RSS %7.1f MB\n", phase, seconds, peak_rss_mb(),
              current_rss_mb());
  std::fflush(stdout);
}

// Shards of 100M random tokens below `vocab_size` (200 MB each) until they hold `gigabytes` GiB,
// streamed to disk a million tokens at a time. Returns the shard paths.
std::vector<std::string> write_random_shards(const fs::path& dir, double gigabytes, int64_t vocab_size) {
  const int64_t shard_tokens = 100'000'000, total_tokens = static_cast<int64_t>(gigabytes * (1 << 30)) / 2;
  Generator gen(1);
  std::vector<uint16_t> block(1 << 20);
  std::vector<std::string> paths;
  for (int64_t written = 0; written < total_tokens;) {
    char name[32];
    std::snprintf(name, sizeof name, "train_%06zu.bin", paths.size());
    TokenShardWriter shard((dir / name).string());
    const int64_t size = std::min(shard_tokens, total_tokens - written);
    while (shard.size() < size) {
      block.resize(static_cast<size_t>(std::min<int64_t>(1 << 20, size - shard.size())));
      for (uint16_t& token : block) token = static_cast<uint16_t>(gen.below(static_cast<uint64_t>(vocab_size)));
      shard.append(block);
    }
    paths.push_back(shard.commit());
    written += size;
  }
  return paths;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [GB=4] [STEPS=20] [CONFIG=configs/demo.json]\n", argv[0]);
    return 2;
  }
  try {
    const fs::path dir = argv[1];
    const double gigabytes = argc > 2 ? std::stod(argv[2]) : 4.0;
    const int64_t steps = argc > 3 ? std::stoll(argv[3]) : 20;
    TrainConfig config = TrainConfig::from_json(read_json_file(argc > 4 ? argv[4] : "configs/demo.json"), "config");
    fs::create_directories(dir);
    const std::string pattern = (dir / "train_*.bin").string();
    std::vector<std::string> written;
    auto start = std::chrono::steady_clock::now();
    if (!fs::exists(dir / "train_000000.bin")) {
      written = write_random_shards(dir, gigabytes, config.model.vocab_size);
      report(("wrote " + std::to_string(written.size()) + " shards").c_str(), seconds_since(start));
    }

    config.data.train = pattern;
    config.data.val = "";
    config.train.steps = steps;
    config.train.sample_every = 0;
    config.train.save_every = steps;
    config.train.out_dir = (dir / "run").string();
    fs::remove_all(config.train.out_dir);
    start = std::chrono::steady_clock::now();
    {
      std::ostringstream progress;
      Trainer trainer(config, /*resume=*/false, progress, std::cerr);
      report("opened the data, built the model", seconds_since(start));
      start = std::chrono::steady_clock::now();
      const TrainResult result = trainer.run();
      report(("trained " + std::to_string(result.steps_done) + " steps").c_str(), seconds_since(start));
    }

    start = std::chrono::steady_clock::now();
    const BatchLoader loader(pattern, 64, 1024, config.model.vocab_size, false, 0);
    std::vector<int32_t> inputs, targets;
    for (int64_t w = 0; w < loader.num_windows(); ++w) loader.read_window(w, inputs, targets);
    const double seconds = seconds_since(start);
    report("read every window once", seconds);
    std::printf("data: %zu shards, %.2f GB of tokens, read at %.2f GB/s\n", loader.files().size(),
                static_cast<double>(loader.total_tokens()) * 2 / 1e9,
                static_cast<double>(loader.total_tokens()) * 2 / 1e9 / seconds);

    fs::remove_all(config.train.out_dir);
    for (const std::string& path : written) fs::remove(path);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_streaming: %s\n", e.what());
    return 1;
  }
}
