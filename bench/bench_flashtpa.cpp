// FlashTPA decode attention alone on the GPU, at the shapes of the yardstick's decode part
// (../shared/yardsticks/train_bench.py decode: the paper's FlashTPA benchmark, H=32, dh=64, RQ=16, R=1,
// bf16 query and cache factors, batch 1 and 8, M = 4K, 16K, 64K, 128K cached tokens, every row full).
// Prints a Markdown table of the kernel's time (CUDA events around the backend call, the median of many
// calls after a warm-up, each call after a 256 MiB write that flushes the L2 cache, as the yardstick's
// triton.testing.do_bench does), the cache-read floor (the bytes of A_k, B_k, A_v, B_v ÷ 4.8 TB/s, the
// H200's peak bandwidth) and their ratio.
// Usage: bench_flashtpa [--reps N]   (default 200)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/pseudo_random.h"
#include "core/backend.h"
#include "nn/flash_tpa_decode.h"

using namespace t6;

namespace {

constexpr int64_t kHeads = 32, kHeadDim = 64, kQueryRank = 16, kRank = 1;
constexpr double kPeakBytesPerSecond = 4.8e12;
constexpr int kWarmup = 10;

Tensor bf16_on_gpu(const Shape& shape, uint64_t seed) {
  return pseudo_random(shape, seed).to_device(Device::CUDA).to_dtype(DType::BF16);
}

// GPU milliseconds of each of `reps` calls of flash_tpa_decode (the kernel timer's events), sorted.
std::vector<double> call_times(const TPAQuery& query, const LayerKVCache& cache, const Tensor& lengths, int reps) {
  Backend& gpu = backend(Device::CUDA);
  Tensor flush = empty({64 * 1024 * 1024}, DType::F32, Device::CUDA);  // 256 MiB, more than the L2
  for (int i = 0; i < kWarmup; ++i) flash_tpa_decode(query, cache, lengths);
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    flush.fill_(0.0);
    gpu.set_kernel_timing(true);  // starts the totals afresh: this call's time only
    flash_tpa_decode(query, cache, lengths);
    for (const Backend::KernelTime& k : gpu.kernel_times())
      if (k.kernel == "tpa_decode_attention") ms.push_back(k.ms);
    gpu.set_kernel_timing(false);
  }
  std::sort(ms.begin(), ms.end());
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 200;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "bench_flashtpa: unknown argument '%s'; usage: bench_flashtpa [--reps N]\n", arg.c_str());
      return 2;
    }
  }
  if (!device_available(Device::CUDA)) {
    std::fprintf(stderr, "bench_flashtpa: needs a CUDA GPU and a build with the CUDA backend\n");
    return 1;
  }
  std::printf("### FlashTPA decode attention, bf16 factors: H=%lld dh=%lld RQ=%lld R=%lld, median of %d calls\n\n",
              static_cast<long long>(kHeads), static_cast<long long>(kHeadDim), static_cast<long long>(kQueryRank),
              static_cast<long long>(kRank), reps);
  std::printf("| B | M | t6 µs | p10–p90 µs | floor µs | t6 / floor | GB/s |\n|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int64_t B : {1, 8}) {
    for (int64_t M : {4096, 16384, 65536, 131072}) {
      // the yardstick's layouts: aq [B,1,H,RQ], bq [B,1,RQ,D], ak/av [B,M,H], bk/bv [B,M,D] (R = 1)
      LayerKVCache cache;
      cache.a_k = bf16_on_gpu({B, M, kHeads, kRank}, 1);
      cache.b_k = bf16_on_gpu({B, M, kRank, kHeadDim}, 2);
      cache.a_v = bf16_on_gpu({B, M, kHeads, kRank}, 3);
      cache.b_v = bf16_on_gpu({B, M, kRank, kHeadDim}, 4);
      const TPAQuery query{bf16_on_gpu({B, kHeads, kQueryRank}, 5), bf16_on_gpu({B, kQueryRank, kHeadDim}, 6)};
      const Tensor lengths =
          from_ints(std::vector<int32_t>(static_cast<size_t>(B), static_cast<int32_t>(M)), {B}, Device::CUDA);
      const std::vector<double> ms = call_times(query, cache, lengths, reps);
      const double us = ms[ms.size() / 2] * 1e3;
      const double bytes = 2.0 * static_cast<double>(B * M * 2 * kRank * (kHeads + kHeadDim));
      const double floor_us = bytes / kPeakBytesPerSecond * 1e6;
      std::printf("| %lld | %lldK | %.1f | %.1f–%.1f | %.1f | %.2f | %.0f |\n", static_cast<long long>(B),
                  static_cast<long long>(M / 1024), us, ms[ms.size() / 10] * 1e3, ms[ms.size() * 9 / 10] * 1e3,
                  floor_us, us / floor_us, bytes / us / 1e3);
    }
  }
  return 0;
}
