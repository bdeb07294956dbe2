// Decode speed on the CPU, printed as the Markdown tables of docs/PERF.md ("Generation (CPU)"):
//  1. tokens/s of the demo model generating with its KV cache, prefill and decode separately;
//  2. the attention-only decode step against cache length M for TPA (FlashTPA over the cached factors)
//     and MHA (t6's attention over cached K/V heads) at the paper's decode-benchmark shape, H=32, dh=64,
//     RQ=16, R=1, batch 1, next to the ratio the spec's cost formula predicts:
//     M·(RQ·R·dh + H·RQ·R + H·R·dh) multiply-adds for TPA against 2·M·H·dh for MHA.
// Usage: bench_decode [--config FILE]   (default configs/demo.json, else the demo shape built in);
// T6_NUM_THREADS sets the CPU threads.
//
// With --contexts (the issue's GPU decode benchmark) it instead times greedy decode steps after a prompt
// of each context length, for each batch size, on --device (cpu or cuda), and prints one table:
//   bench_decode --config configs/paper_small.json --device cuda --contexts 1024,8192 --batches 1,8
//                [--new-tokens 64] [--profile]
// "launches per step" counts the operations of the captured CUDA graph of one decode step (— without one).
// --profile adds, per row of the table, the GPU time per decode step by kernel (profile_decode_steps).
// The model is randomly initialised (the speed does not depend on the weights) and block_size is raised
// to fit the longest context plus the new tokens.
//
// With --capacity, the long-context showcase: how many sequences of 32K and 128K tokens fit a GPU's
// memory with the model's factor cache against MHA, GQA and MQA, and decode tokens/s where MHA's would
// not fit (bench_decode --help):
//   bench_decode --capacity --device cuda --allow-beyond-block-size --synthetic-cache
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "bench/pseudo_random.h"
#include "core/backend.h"
#include "nn/cache_footprint.h"
#include "nn/cached_heads_decode.h"
#include "nn/decode_graph.h"
#include "nn/flash_tpa_decode.h"
#include "nn/fused_decode.h"
#include "nn/generate.h"
#include "train/memory_estimate.h"
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


// --- The long-context showcase: bench_decode --capacity (usage in kCapacityHelp) -------------------

const char* const kCapacityHelp = R"(usage: bench_decode --capacity [--config FILE] [--device cpu|cuda] [--memory-gib G]
                    [--cache-dtype f32|bf16] [--gqa-kv-heads G] [--contexts N,N,...] [--batches N,N,...]
                    [--new-tokens N] [--allow-beyond-block-size] [--synthetic-cache] [--table-only]

TPA's memory advantage. First a table: for G GiB of device memory, the largest batch at each context,
and the longest context at batch 1, for the model's factor cache against MHA, GQA and MQA over the
same H heads of head_dim (nn/cache_footprint.h). Counted: the weights (every parameter of each variant,
float32 as t6 holds them) and per sequence its KV cache and its float32 logits row; not counted: a
decode step's activations, the backend's workspaces, and the bfloat16 copy of the weights a GPU decode
makes. Then it measures the model's greedy decode tokens/s at each context, by default at the smallest
batch (a multiple of 8) that MHA's cache would no longer fit, where the model's still does.

  --config FILE        the model (default: the paper's small T6, L=12 d=768 H=34 dh=64 RQ=6 R=2)
  --device cpu|cuda    where the decode runs (default cpu)
  --memory-gib G       the memory the table plans for (default: the device's free memory; required on
                       the CPU, e.g. 139 for an H200's)
  --cache-dtype D      the table's cache element: f32 or bf16 (default: what generation's cache holds
                       on the device: bf16 on a GPU for tpa and tpa_kvonly, else f32)
  --gqa-kv-heads G     the GQA variant's key/value heads (default: the largest divisor of H ≤ H/4)
  --contexts LIST      cached tokens per sequence (default 32768,131072)
  --batches LIST       measure these batches at every context instead
  --new-tokens N       timed decode steps per measurement (default 64)
  --allow-beyond-block-size
                       required to decode past the model's block_size: RoPE extrapolates numerically,
                       so the speed is real, but the quality there is not what this measures
  --synthetic-cache    fill each cache with pseudo-random factors instead of a prefill of random
                       prompts (labelled in the output); the decode speed does not depend on the values.
                       The default, a real prefill, is refused when its activations do not fit
  --table-only         print the table; measure nothing
)";

struct CapacityOptions {
  ModelConfig config;
  Device device = Device::CPU;
  std::optional<double> memory_gib;
  std::optional<DType> cache_dtype;
  int64_t gqa_kv_heads = 0;
  std::vector<int64_t> contexts = {32768, 131072}, batches;  // batches: empty for the default
  int64_t new_tokens = 64;
  bool allow_beyond_block_size = false, synthetic_cache = false, table_only = false;
};

std::string gib(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return text;
}

std::string tokens_text(int64_t n) { return n >= 1024 && n % 1024 == 0 ? cat(n / 1024, "K") : cat(n); }

void print_capacity_table(const std::vector<CacheVariant>& variants, int64_t memory, const CapacityOptions& o,
                          DType cache) {
  const ModelConfig& c = o.config;
  std::printf("### KV cache capacity in %s: L=%lld d=%lld H=%lld dh=%lld RQ=%lld R=%lld V=%lld, %s cache\n\n",
              gib(static_cast<double>(memory)).c_str(), static_cast<long long>(c.n_layer),
              static_cast<long long>(c.n_embd), static_cast<long long>(c.n_head), static_cast<long long>(c.head_dim),
              static_cast<long long>(c.q_rank), static_cast<long long>(c.rank), static_cast<long long>(c.vocab_size),
              dtype_name(cache));
  std::printf("| attention | cached numbers per token and layer | cache per token (%lld layers) | vs. this model | "
              "weights |", static_cast<long long>(c.n_layer));
  for (int64_t context : o.contexts) std::printf(" largest batch at %s |", tokens_text(context).c_str());
  std::printf(" longest context at batch 1 |\n|---|---:|---:|---:|---:|");
  for (size_t i = 0; i < o.contexts.size(); ++i) std::printf("---:|");
  std::printf("---:|\n");
  for (const CacheVariant& v : variants) {
    const DecodeMemory need(v.config, DType::F32, cache);
    std::printf("| %s | %lld | %lld bytes | %.2fx | %s |", v.name.c_str(),
                static_cast<long long>(v.numbers_per_token_layer()), static_cast<long long>(v.bytes_per_token(cache)),
                static_cast<double>(v.numbers_per_token_layer()) /
                    static_cast<double>(variants[0].numbers_per_token_layer()),
                gib(static_cast<double>(need.weight_bytes)).c_str());
    for (int64_t context : o.contexts) std::printf(" %lld |", static_cast<long long>(need.max_batch(memory, context)));
    std::printf(" %lld |\n", static_cast<long long>(need.max_context(memory, 1)));
  }
  std::printf("\nCounted: the weights (float32) and per sequence its KV cache and float32 logits row; not counted: "
              "a decode step's activations, workspaces, the bfloat16 decode copy of the weights.\n\n");
}

// The batches measured at `context`: those given, else the smallest multiple of 8 that MHA's cache no
// longer fits, if the model's still does (none otherwise).
std::vector<int64_t> showcase_batches(const std::vector<CacheVariant>& variants, int64_t memory, int64_t context,
                                      const CapacityOptions& o, DType cache) {
  if (!o.batches.empty()) return o.batches;
  const int64_t mha = DecodeMemory(variants[1].config, DType::F32, cache).max_batch(memory, context);
  const int64_t own = DecodeMemory(variants[0].config, DType::F32, cache).max_batch(memory, context);
  const int64_t batch = std::min((mha / 8 + 1) * 8, own);
  if (batch <= mha) return {};
  return {batch};
}

// Writes pseudo-random values into slots [0, context) of every cache buffer, a block of slots at a time
// from one block made per buffer shape, and makes every row `context` tokens long.
void fill_synthetic(KVCache& cache, int64_t context, int time_axis) {
  const int64_t block = std::min<int64_t>(context, 1024);
  std::map<Shape, Tensor> sources;
  for (size_t i = 0; i < cache.layers(); ++i) {
    for (const Tensor& buffer : cache.layer(i).buffers()) {
      Shape shape = buffer.shape();
      shape[static_cast<size_t>(time_axis)] = block;
      Tensor& source = sources[shape];
      if (!source.defined())
        source = pseudo_random(shape, 11 * sources.size()).to_device(buffer.device()).to_dtype(buffer.dtype());
      for (int64_t s = 0; s < context; s += block) {
        Tensor window = slice(buffer, time_axis, s, std::min(s + block, context));  // a view
        window.copy_(slice(source, time_axis, 0, window.size(time_axis)));
      }
    }
  }
  cache.set_lengths(std::vector<int64_t>(static_cast<size_t>(cache.batch()), context));
}

struct DecodeRate {
  double tokens_per_second = 0;
  int64_t launches = 0;          // of the captured step; 0 without one
  int64_t cache_bytes = 0;       // allocated
};

// Greedy-shaped decode steps (every row feeds token 1: the speed does not depend on it) over a cache
// filled by fill_synthetic; timed like generate(): the step and the logits' copy to the host.
DecodeRate synthetic_decode_rate(const T6Model& model, int64_t batch, int64_t context, int64_t steps) {
  const int64_t warmup = 3;  // two eager steps, then the one that captures the graph
  KVCache cache(model.config, batch, context + warmup + steps, model.device(), decode_cache_dtype(model));
  fill_synthetic(cache, context, model.config.factorized_kv() ? 1 : 2);
  DecodeGraph decoder(model, cache);
  const std::vector<int32_t> tokens(static_cast<size_t>(batch), 1);
  for (int64_t s = 0; s < warmup; ++s) decoder.step(tokens).to_device(Device::CPU);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t s = 0; s < steps; ++s) decoder.step(tokens).to_device(Device::CPU);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {static_cast<double>(batch * steps) / seconds, decoder.operations_per_step(), cache.bytes_allocated()};
}

// generate() after random prompts of `context` tokens: the best decode rate of two runs.
DecodeRate prefill_decode_rate(const T6Model& model, int64_t batch, int64_t context, int64_t steps) {
  check_memory_fits(inference_memory(model.config, batch, context, context + steps, model.device()), model.device(),
                    "pass --synthetic-cache to fill the cache without a prefill, or use smaller --batches");
  Generator gen(3);
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(batch));
  for (auto& p : prompts)
    for (int64_t i = 0; i < context; ++i) p.push_back(static_cast<int32_t>(gen.below(model.config.vocab_size)));
  GenerationOptions o;
  o.greedy = true;
  o.max_new_tokens = steps + 1;  // the first new token comes from the prefill
  DecodeRate best;
  for (int run = 0; run < 2; ++run) {
    const GenerationResult r = generate(model, prompts, o);
    best.tokens_per_second =
        std::max(best.tokens_per_second, static_cast<double>(r.decode_tokens) / r.decode_seconds);
    best.launches = r.operations_per_step, best.cache_bytes = r.cache_bytes;
  }
  return best;
}

void measure_showcase(const std::vector<CacheVariant>& variants, int64_t memory, const CapacityOptions& o,
                      DType cache) {
  ModelConfig c = o.config;
  c.block_size = std::max(c.block_size, *std::max_element(o.contexts.begin(), o.contexts.end()) + o.new_tokens + 3);
  T6Model model(c);
  model.to(o.device);
  const DType own_cache = decode_cache_dtype(model);
  std::printf("### Decode beyond MHA's memory on %s: %s, greedy, %lld timed steps\n\n",
              backend(o.device).describe().c_str(), variants[0].name.c_str(), static_cast<long long>(o.new_tokens));
  if (o.synthetic_cache)
    std::printf("Cache fill: SYNTHETIC. Each cache holds pseudo-random factors written directly, not a prefill's; "
                "the decode speed does not depend on the values.\n\n");
  std::printf("| batch | context | cache fill | cache allocated | MHA would need | decode tokens/s | ms per step | "
              "launches per step |\n|---:|---:|---|---:|---:|---:|---:|---:|\n");
  for (int64_t context : o.contexts) {
    const std::vector<int64_t> batches = showcase_batches(variants, memory, context, o, cache);
    if (batches.empty())
      std::printf("| — | %s | no batch fits this model's cache but not MHA's in %s | | | | | |\n",
                  tokens_text(context).c_str(), gib(static_cast<double>(memory)).c_str());
    for (int64_t batch : batches) {
      const DecodeMemory own(c, DType::F32, own_cache), mha(variants[1].config, DType::F32, own_cache);
      T6_CHECK(own.total(batch, context) <= memory, "batch ", batch, " at context ", context, " needs ",
               gib(static_cast<double>(own.total(batch, context))), " with a ", dtype_name(own_cache),
               " cache, more than the ", gib(static_cast<double>(memory)), " planned for; give smaller --batches");
      const DecodeRate r = o.synthetic_cache ? synthetic_decode_rate(model, batch, context, o.new_tokens)
                                             : prefill_decode_rate(model, batch, context, o.new_tokens);
      std::printf("| %lld | %s | %s | %s | %s | %.0f | %.3f | %s |\n", static_cast<long long>(batch),
                  tokens_text(context).c_str(), o.synthetic_cache ? "synthetic" : "prefill",
                  gib(static_cast<double>(r.cache_bytes)).c_str(),
                  gib(static_cast<double>(mha.total(batch, context))).c_str(), r.tokens_per_second,
                  1e3 * static_cast<double>(batch) / r.tokens_per_second,
                  r.launches > 0 ? std::to_string(r.launches).c_str() : "—");
      std::fflush(stdout);
    }
  }
  std::printf("\n");
}

void run_capacity(const CapacityOptions& o) {
  const ModelConfig& c = o.config;
  T6_CHECK(o.memory_gib || o.device != Device::CPU,
           "--capacity on the CPU needs --memory-gib G, the memory to plan for (e.g. 139 for an H200's)");
  T6_CHECK(!o.memory_gib || *o.memory_gib > 0, "--memory-gib must be > 0, got ", *o.memory_gib);
  T6_CHECK(o.new_tokens >= 1, "--new-tokens must be ≥ 1, got ", o.new_tokens);
  for (int64_t context : o.contexts) {
    T6_CHECK(context >= 1, "--contexts must be ≥ 1 each, got ", context);
    T6_CHECK(o.table_only || o.allow_beyond_block_size || context + o.new_tokens <= c.block_size, "context ",
             context, " and ", o.new_tokens, " new tokens go beyond the model's block_size of ", c.block_size,
             "; pass --allow-beyond-block-size to decode past the trained length (RoPE extrapolates "
             "numerically: the speed is real, the quality there is not claimed)");
  }
  for (int64_t batch : o.batches) T6_CHECK(batch >= 1, "--batches must be ≥ 1 each, got ", batch);
  const int64_t memory = o.memory_gib ? static_cast<int64_t>(*o.memory_gib * 1024 * 1024 * 1024)
                                      : static_cast<int64_t>(backend(o.device).free_memory());
  // by default the dtype generation's cache takes on this device (T6Model's parameters are float32)
  const DType cache = o.cache_dtype.value_or(decode_cache_dtype(c, o.device, DType::F32));
  const std::vector<CacheVariant> variants = same_heads_variants(c, o.gqa_kv_heads);
  print_capacity_table(variants, memory, o, cache);
  if (!o.table_only) measure_showcase(variants, memory, o, cache);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    NoGradGuard no_grad;
    std::string config_path = "configs/demo.json", device_name = "cpu";
    std::vector<int64_t> contexts, batches = {1, 8};
    int64_t new_tokens = 64;
    bool profile = false, capacity = false, config_given = false;
    CapacityOptions showcase;
    for (int i = 1; i < argc; i += 2) {
      const std::string flag = argv[i];
      if (flag == "--help") {
        std::printf("bench_decode [--config FILE]: the CPU tables of docs/PERF.md; bench_decode --contexts LIST: "
                    "decode speed after prompts (usage at the top of bench/bench_decode.cpp).\n\n%s", kCapacityHelp);
        return 0;
      }
      bool* const switch_flag = flag == "--profile"                   ? &profile
                                : flag == "--capacity"                ? &capacity
                                : flag == "--allow-beyond-block-size" ? &showcase.allow_beyond_block_size
                                : flag == "--synthetic-cache"         ? &showcase.synthetic_cache
                                : flag == "--table-only"              ? &showcase.table_only
                                                                      : nullptr;
      if (switch_flag) {
        *switch_flag = true;
        --i;
        continue;
      }
      T6_CHECK(i + 1 < argc, "bench_decode: ", flag, " needs a value");
      const std::string value = argv[i + 1];
      if (flag == "--config") config_path = value, config_given = true;
      else if (flag == "--device") device_name = value;
      else if (flag == "--contexts") contexts = parse_list(value);
      else if (flag == "--batches") batches = showcase.batches = parse_list(value);
      else if (flag == "--new-tokens") new_tokens = std::stoll(value);
      else if (flag == "--memory-gib") showcase.memory_gib = std::stod(value);
      else if (flag == "--cache-dtype") showcase.cache_dtype = value == "bf16" ? DType::BF16 : DType::F32;
      else if (flag == "--gqa-kv-heads") showcase.gqa_kv_heads = std::stoll(value);
      else throw Error(cat("bench_decode: unknown option ", flag, "; see bench_decode --help"));
      T6_CHECK(flag != "--cache-dtype" || value == "bf16" || value == "f32", "--cache-dtype must be f32 or bf16, got ",
               value);
    }
    if (capacity) {
      showcase.config = config_given ? read_model_config(config_path) : ModelConfig{};  // the paper's small T6
      showcase.device = parse_device(device_name);
      if (!contexts.empty()) showcase.contexts = contexts;
      showcase.new_tokens = new_tokens;
      run_capacity(showcase);
      return 0;
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
