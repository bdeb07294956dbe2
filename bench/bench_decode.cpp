// Decode speed on the CPU, printed as the Markdown tables of docs/PERF.md ("Generation (CPU)"):
//  1. tokens/s of the demo model generating with its KV cache, prefill and decode separately;
//  2. the attention-only decode step against cache length M for TPA (FlashTPA over the cached factors)
//     and MHA (t6's attention over cached K/V heads) at the paper's decode-benchmark shape, H=32, dh=64,
//     RQ=16, R=1, batch 1, next to the ratio the spec's cost formula predicts:
//     M·(RQ·R·dh + H·RQ·R + H·R·dh) multiply-adds for TPA against 2·M·H·dh for MHA.
// Usage: bench_decode [--config FILE]   (default configs/demo.json, else the demo shape built in);
// T6_NUM_THREADS sets the CPU threads.
//
// With --contexts (the GPU decode benchmark) it instead times greedy decode steps after a prompt
// of each context length, for each batch size, on --device (cpu or cuda), and prints one table:
//   bench_decode --config configs/paper_small.json --device cuda --contexts 1024,8192 --batches 1,8
//                [--new-tokens 64] [--profile]
// "launches per step" counts the operations of the captured CUDA graph of one decode step (— without one).
// --profile adds, per row of the table, the GPU time per decode step by kernel (profile_decode_steps).
// The model is randomly initialised (the speed does not depend on the weights) and block_size is raised
// to fit the longest context plus the new tokens.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "bench/pseudo_random.h"
#include "core/backend.h"
#include "nn/cached_heads_decode.h"
#include "nn/flash_tpa_decode.h"
#include "nn/fused_decode.h"
#include "nn/generate.h"
#include "train/train_config.h"

using namespace t6;

namespace {

// The demo model's shape, for when configs/demo.json is not there.
ModelConfig demo_shape() {
  ModelConfig c;
  c.vocab_size = 256, c.n_layer = 4, c.n_embd = 256, c.n_head = 8, c.head_dim = 32;
  c.q_rank = 6, c.rank = 2, c.block_size = 128;
  return c;
}

// Median wall time of `f` in seconds, after one warm-up call; at least 3 runs and about 1 s in all.
double median_seconds(const std::function<void()>& f) {
  using clock = std::chrono::steady_clock;
  f();
  std::vector<double> times;
  const auto start = clock::now();
  while (times.size() < 3 || (times.size() < 50 && std::chrono::duration<double>(clock::now() - start).count() < 1.0)) {
    const auto t0 = clock::now();
    f();
    times.push_back(std::chrono::duration<double>(clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void bench_generation(const ModelConfig& c) {
  T6Model model(c);
  std::printf("### Demo model: L=%lld d=%lld H=%lld dh=%lld RQ=%lld R=%lld V=%lld (%s), block_size %lld\n\n",
              static_cast<long long>(c.n_layer), static_cast<long long>(c.n_embd), static_cast<long long>(c.n_head),
              static_cast<long long>(c.head_dim), static_cast<long long>(c.q_rank), static_cast<long long>(c.rank),
              static_cast<long long>(c.vocab_size), c.attention_name(), static_cast<long long>(c.block_size));
  std::printf("| batch | prompt | new tokens | prefill tokens/s | decode tokens/s | cache bytes/token | "
              "cache allocated |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  const int64_t prompt = c.block_size / 2, new_tokens = c.block_size - prompt;
  for (int64_t batch : {1, 8}) {
    std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(batch));
    Generator gen(3);
    for (auto& p : prompts)
      for (int64_t i = 0; i < prompt; ++i)
        p.push_back(static_cast<int32_t>(gen.below(static_cast<uint64_t>(c.vocab_size))));
    GenerationOptions o;
    o.greedy = true;
    o.max_new_tokens = new_tokens;
    double prefill = 0, decode = 0;  // the best rates of five runs: the machine's noise only slows things down
    GenerationResult r;
    for (int run = 0; run < 5; ++run) {
      r = generate(model, prompts, o);
      prefill = std::max(prefill, static_cast<double>(r.prefill_tokens) / r.prefill_seconds);
      decode = std::max(decode, static_cast<double>(r.decode_tokens) / r.decode_seconds);
    }
    std::printf("| %lld | %lld | %lld | %.0f | %.0f | %lld | %lld |\n", static_cast<long long>(batch),
                static_cast<long long>(prompt), static_cast<long long>(new_tokens), prefill, decode,
                static_cast<long long>(r.cache_bytes_per_token), static_cast<long long>(r.cache_bytes));
  }
  std::printf("\n");
}

void bench_attention_step() {
  const int64_t H = 32, dh = 64, RQ = 16, R = 1;
  const double tpa_macs_per_token = static_cast<double>(RQ * R * dh + H * RQ * R + H * R * dh);
  const double mha_macs_per_token = static_cast<double>(2 * H * dh);
  std::printf("### Attention-only decode step: H=%lld dh=%lld RQ=%lld R=%lld, batch 1\n\n", static_cast<long long>(H),
              static_cast<long long>(dh), static_cast<long long>(RQ), static_cast<long long>(R));
  std::printf("| M | FlashTPA ms | MHA ms | TPA / MHA | predicted (multiply-adds) | cache read TPA / MHA | "
              "FlashTPA GFLOP/s | MHA cache GB/s |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int64_t M : {1024, 4096, 16384, 65536}) {
    // TPA: the factors of M cached tokens and the new token's query factors
    LayerKVCache factors;
    factors.a_k = pseudo_random({1, M, H, R}, 1);
    factors.b_k = pseudo_random({1, M, R, dh}, 2);
    factors.a_v = pseudo_random({1, M, H, R}, 3);
    factors.b_v = pseudo_random({1, M, R, dh}, 4);
    const TPAQuery query{pseudo_random({1, H, RQ}, 5), pseudo_random({1, RQ, dh}, 6)};
    const double tpa = median_seconds([&] { flash_tpa_decode(query, factors, {M}); });

    // MHA: t6's decode path over the head-major cache (1,H,M,dh): BLAS q·Kᵀ, softmax, BLAS p·V
    const Tensor q = pseudo_random({1, H, dh}, 7);
    const Tensor k = pseudo_random({1, H, M, dh}, 8), v = pseudo_random({1, H, M, dh}, 9);
    const double mha = median_seconds([&] { cached_heads_decode(q, k, v, {M}); });

    const double tpa_bytes = 4.0 * static_cast<double>(M * 2 * R * (H + dh));
    const double mha_bytes = 4.0 * static_cast<double>(M * 2 * H * dh);
    std::printf("| %lldK | %.3f | %.3f | %.3f | %.3f | %.3f | %.1f | %.1f |\n", static_cast<long long>(M / 1024),
                tpa * 1e3, mha * 1e3, tpa / mha, tpa_macs_per_token / mha_macs_per_token, tpa_bytes / mha_bytes,
                2.0 * tpa_macs_per_token * static_cast<double>(M) / tpa / 1e9, mha_bytes / mha / 1e9);
  }
  std::printf("\n");
}

std::vector<int64_t> parse_list(const std::string& text) {
  std::vector<int64_t> values;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    values.push_back(std::stoll(text.substr(start, comma - start)));
    start = comma + 1;
  }
  return values;
}

// The GPU time of a decode step by kernel, from the backend's kernel timer, over steps that continue
// the prompts. The steps run eagerly, the work the captured graph holds (the timer cannot see inside a
// replay): the fused step over the weights generation copies, for the factorized attentions.
void profile_decode_steps(const T6Model& model, const std::vector<std::vector<int32_t>>& prompts, int64_t steps) {
  const int64_t B = static_cast<int64_t>(prompts.size()), T = static_cast<int64_t>(prompts[0].size());
  KVCache cache(model.config, B, T + steps, model.device(), decode_cache_dtype(model));
  std::vector<int32_t> flat;
  for (const auto& p : prompts) flat.insert(flat.end(), p.begin(), p.end());
  model.prefill(from_ints(flat, {B, T}), std::vector<int64_t>(static_cast<size_t>(B), T), cache);
  std::optional<DecodeWeights> fused;
  if (model.config.factorized_kv()) fused = decode_weights(model, decode_weight_dtype(model));
  const Tensor tokens = from_ints(std::vector<int32_t>(static_cast<size_t>(B), 1), {B});
  model.decode_step(tokens, cache, fused ? &*fused : nullptr);  // warm-up
  Backend& device = backend(model.device());
  device.set_kernel_timing(true);
  for (int64_t s = 1; s < steps; ++s) model.decode_step(tokens, cache, fused ? &*fused : nullptr);
  const auto times = device.kernel_times();
  device.set_kernel_timing(false);
  const double n = static_cast<double>(steps - 1);
  double total = 0;
  for (const auto& k : times) total += k.ms;
  std::printf("GPU time per decode step: %.3f ms, by kernel:\n", total / n);
  for (size_t i = 0; i < times.size() && i < 12; ++i)
    std::printf("  %8.4f ms %7.1f calls  %s\n", times[i].ms / n, static_cast<double>(times[i].calls) / n,
                times[i].kernel.c_str());
}

// Decode tokens/s after `context` prompt tokens, for each batch and context, on `device`.
void bench_decode_at_contexts(ModelConfig c, Device device, const std::vector<int64_t>& contexts,
                              const std::vector<int64_t>& batches, int64_t new_tokens, bool profile) {
  c.block_size = *std::max_element(contexts.begin(), contexts.end()) + new_tokens;
  T6Model model(c);
  model.to(device);
  std::printf("### Decode on %s: L=%lld d=%lld H=%lld dh=%lld RQ=%lld R=%lld V=%lld (%s), %lld new tokens\n\n",
              backend(device).describe().c_str(), static_cast<long long>(c.n_layer), static_cast<long long>(c.n_embd),
              static_cast<long long>(c.n_head), static_cast<long long>(c.head_dim), static_cast<long long>(c.q_rank),
              static_cast<long long>(c.rank), static_cast<long long>(c.vocab_size), c.attention_name(),
              static_cast<long long>(new_tokens));
  std::printf("| batch | context | decode tokens/s | ms per step | launches per step | prefill tokens/s |\n"
              "|---:|---:|---:|---:|---:|---:|\n");
  for (int64_t context : contexts) {
    for (int64_t batch : batches) {
      Generator gen(3);
      std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(batch));
      for (auto& p : prompts)
        for (int64_t i = 0; i < context; ++i) p.push_back(static_cast<int32_t>(gen.below(c.vocab_size)));
      GenerationOptions o;
      o.greedy = true;
      o.max_new_tokens = new_tokens;
      double prefill = 0, decode = 0;  // the best of three runs (the first also warms up)
      int64_t launches = 0;
      for (int run = 0; run < 3; ++run) {
        const GenerationResult r = generate(model, prompts, o);
        prefill = std::max(prefill, static_cast<double>(r.prefill_tokens) / r.prefill_seconds);
        decode = std::max(decode, static_cast<double>(r.decode_tokens) / r.decode_seconds);
        launches = r.operations_per_step;
      }
      std::printf("| %lld | %lld | %.0f | %.3f | %s | %.0f |\n", static_cast<long long>(batch),
                  static_cast<long long>(context), decode, 1e3 * static_cast<double>(batch) / decode,
                  launches > 0 ? std::to_string(launches).c_str() : "—", prefill);
      if (profile) profile_decode_steps(model, prompts, new_tokens);
      std::fflush(stdout);
    }
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    NoGradGuard no_grad;
    std::string config_path = "configs/demo.json", device_name = "cpu";
    std::vector<int64_t> contexts, batches = {1, 8};
    int64_t new_tokens = 64;
    bool profile = false;
    for (int i = 1; i < argc; i += 2) {
      const std::string flag = argv[i];
      if (flag == "--profile") {
        profile = true;
        --i;
        continue;
      }
      T6_CHECK(i + 1 < argc, "bench_decode: ", flag, " needs a value");
      const std::string value = argv[i + 1];
      if (flag == "--config") config_path = value;
      else if (flag == "--device") device_name = value;
      else if (flag == "--contexts") contexts = parse_list(value);
      else if (flag == "--batches") batches = parse_list(value);
      else if (flag == "--new-tokens") new_tokens = std::stoll(value);
      else throw Error(cat("bench_decode: unknown option ", flag, "; see the usage at the top of bench/bench_decode.cpp"));
    }
    const ModelConfig c = std::filesystem::exists(config_path) ? read_model_config(config_path) : demo_shape();
    if (!contexts.empty()) {
      bench_decode_at_contexts(c, parse_device(device_name), contexts, batches, new_tokens, profile);
      return 0;
    }
    std::printf("CPU: %s\n\n", backend(Device::CPU).describe().c_str());
    bench_generation(c);
    bench_attention_step();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_decode: %s\n", e.what());
    return 1;
  }
}
