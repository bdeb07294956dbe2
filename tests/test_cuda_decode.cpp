// FlashTPA decode attention on the GPU (cuda/kernels_tpa_decode.cu) against the CPU kernel on random
// factors of awkward sizes, float32 and bfloat16, for the factorized query ("tpa") and plain query heads
// ("tpa_kvonly"); and generation with the factorized KV cache on the GPU: a randomized model's
// decode-step logits against its own full forward. Skipped (reported as skipped) when no CUDA GPU is present.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "nn/decode_graph.h"
#include "nn/fused_decode.h"
#include "nn/t6_model.h"
#include "test_helpers.h"

using namespace t6;
using t6::testing::max_scaled_error;

namespace {

// The arguments of one Backend::tpa_decode_attention call, on the CPU.
struct DecodeCall {
  Backend::TPADecode p;
  Tensor a_q, b_q, a_k, b_k, a_v, b_v, lengths;  // a_q undefined for plain query heads
};

// A cache factor (B,M,rows,cols) of uniform [−1, 1) values in each row's first lengths[b] slots and NaN
// in every other slot: a kernel that read past a row's length would return NaN.
Tensor cache_factor(const std::vector<int32_t>& lengths, int64_t M, int64_t rows, int64_t cols, Generator& gen) {
  const int64_t B = static_cast<int64_t>(lengths.size()), per_token = rows * cols;
  std::vector<double> v(static_cast<size_t>(B * M * per_token));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < per_token; ++k)
        v[(b * M + m) * per_token + k] = m < lengths[b] ? 2 * gen.uniform() - 1 : NAN;
  return from_vector(v, {B, M, rows, cols});
}

// Random inputs for H heads of dimension dh, key/value rank R and query rank RQ (0: plain query heads)
// over a cache of M slots. The logit scale is 3 rather than the model's 1/(RQ·R·sqrt(dh)), which with
// these inputs would leave every logit near 0: at 3 they have a standard deviation of 6 to 9, so the
// softmax is peaked and the running max changes between tiles and chunks, which is what the online
// softmax and the merge must get right.
DecodeCall random_call(int64_t H, int64_t RQ, int64_t R, int64_t dh, int64_t M, const std::vector<int32_t>& lengths,
                       uint64_t seed) {
  Generator gen(seed);
  const int64_t B = static_cast<int64_t>(lengths.size());
  DecodeCall c;
  c.p.batch = B, c.p.heads = H, c.p.q_rank = RQ, c.p.rank = R, c.p.head_dim = dh, c.p.capacity = M;
  c.p.logit_scale = 3.0;
  c.p.value_scale = 1.0 / static_cast<double>(R);
  if (RQ > 0) c.a_q = uniform({B, H, RQ}, -1, 1, gen);
  c.b_q = RQ > 0 ? uniform({B, RQ, dh}, -1, 1, gen) : uniform({B, H, dh}, -1, 1, gen);
  c.a_k = cache_factor(lengths, M, H, R, gen);
  c.b_k = cache_factor(lengths, M, R, dh, gen);
  c.a_v = cache_factor(lengths, M, H, R, gen);
  c.b_v = cache_factor(lengths, M, R, dh, gen);
  c.lengths = from_ints(lengths, {B});
  return c;
}

Tensor run_decode(const DecodeCall& c, Device device) {
  auto on = [&](const Tensor& t) { return t.defined() ? t.to_device(device) : Tensor(); };
  Tensor out = empty({c.p.batch, c.p.heads, c.p.head_dim}, DType::F32, device);
  backend(device).tpa_decode_attention(c.p, on(c.a_q), on(c.b_q), on(c.a_k), on(c.b_k), on(c.a_v), on(c.b_v),
                                       on(c.lengths), out);
  return out;
}

// Both backends agree to float32 rounding: the GPU sums in another order (per-lane partial dot
// products, tiles of 32 tokens, chunks sized to the GPU) than the CPU (SIMD lanes, chunks of 256). With
// logits up to ~30, a few ulp of a logit (~1e-6) move a softmax weight by ~1e-6 relative, and each output
// is a weighted mean of values of size ≤ 1. On these inputs the CPU's float32 results are within 1e-6 of
// its float64 ones, and a host emulation of the GPU kernel within 1.5e-6 of the CPU's: 1e-5 leaves a
// margin of about 7 for the GPU's own rounding (its expf, fused multiply-adds).
constexpr double kKernelTolerance = 1e-5;

void check_gpu_matches_cpu(const DecodeCall& c) {
  const std::vector<double> cpu = run_decode(c, Device::CPU).to_double_vector();
  const std::vector<double> gpu = run_decode(c, Device::CUDA).to_double_vector();
  int64_t non_finite = 0;
  for (double v : gpu) non_finite += std::isfinite(v) ? 0 : 1;
  CHECK(non_finite == 0);  // max_scaled_error would pass over NaN
  CHECK(max_scaled_error(gpu, cpu) <= kKernelTolerance);
}

// The same call over bfloat16 factors (the values rounded once; the CPU widens them back exactly).
DecodeCall bf16_call(DecodeCall c) {
  for (Tensor* t : {&c.a_q, &c.b_q, &c.a_k, &c.b_k, &c.a_v, &c.b_v})
    if (t->defined()) *t = t->to_dtype(DType::BF16);
  return c;
}

// bf16 factors on the GPU (tensor cores) against the CPU on the same factors: core/backend.h bounds
// the difference by 2^-9 · value_scale · Σ_u max|A_v B_v| = 2^-9 for these inputs of size ≤ 1 (the
// rounding of p·A_v to bf16), plus the logits' error at ~16 bits: up to 30 · 2^-16 ≈ 5e-4 at logit
// scale 3, which moves an output by as much. 3e-3 leaves a small margin over the sum (~2.5e-3).
constexpr double kBf16Tolerance = 3e-3;

void check_bf16_gpu_matches_cpu(const DecodeCall& f32) {
  const DecodeCall c = bf16_call(f32);
  const std::vector<double> cpu = run_decode(c, Device::CPU).to_double_vector();
  const std::vector<double> gpu = run_decode(c, Device::CUDA).to_double_vector();
  int64_t non_finite = 0;
  for (double v : gpu) non_finite += std::isfinite(v) ? 0 : 1;
  CHECK(non_finite == 0);
  CHECK(max_scaled_error(gpu, cpu) <= kBf16Tolerance);
}

ModelConfig tiny_config(const std::string& attention) {
  ModelConfig c;
  c.vocab_size = 41, c.n_layer = 2, c.n_embd = 32, c.n_head = 5, c.head_dim = 38, c.q_rank = 4, c.rank = 3;
  c.block_size = 48;
  c.attention = attention_kind_names().parse(attention, "attention");
  return c;
}

}  // namespace

TEST_SUITE("cuda decode" * t6::testing::needs_cuda()) {

TEST_CASE("cuda tpa_decode_attention matches the CPU: rows of 1, 37 and 300 tokens, factorized query") {
  check_gpu_matches_cpu(random_call(/*H=*/5, /*RQ=*/4, /*R=*/3, /*dh=*/38, /*M=*/311, {1, 37, 300}, 1));
}

TEST_CASE("cuda tpa_decode_attention matches the CPU: plain query heads (tpa_kvonly)") {
  check_gpu_matches_cpu(random_call(5, /*RQ=*/0, 3, 38, 311, {1, 37, 300}, 2));
}

TEST_CASE("cuda tpa_decode_attention matches the CPU: one row of 5000 cached tokens") {
  check_gpu_matches_cpu(random_call(5, 4, 3, 38, /*M=*/5000, {5000}, 3));
  check_gpu_matches_cpu(random_call(5, 0, 3, 38, 5000, {4999}, 4));
}

TEST_CASE("cuda tpa_decode_attention matches the CPU: the paper's small T6 head shapes") {
  check_gpu_matches_cpu(random_call(/*H=*/34, /*RQ=*/6, /*R=*/2, /*dh=*/64, /*M=*/1024, {1024, 3, 517, 64}, 5));
}

TEST_CASE("cuda tpa_decode_attention matches the CPU: wide heads, past 48 KiB of shared memory per block") {
  check_gpu_matches_cpu(random_call(/*H=*/16, /*RQ=*/0, /*R=*/2, /*dh=*/128, /*M=*/100, {100, 7}, 6));
}

TEST_CASE("cuda tpa_decode_attention, bf16 factors, matches the CPU: odd heads, RQ 6, rank 2, head_dim 38") {
  // head_dim 38 and H·R = 10 are not whole 8-byte pieces: the scalar copies; rows end mid-stage
  check_bf16_gpu_matches_cpu(random_call(/*H=*/5, /*RQ=*/6, /*R=*/2, /*dh=*/38, /*M=*/311, {1, 37, 300}, 11));
}

TEST_CASE("cuda tpa_decode_attention, bf16 factors, matches the CPU: plain query heads (tpa_kvonly)") {
  check_bf16_gpu_matches_cpu(random_call(5, /*RQ=*/0, 3, 38, 311, {1, 37, 300}, 12));
  check_bf16_gpu_matches_cpu(random_call(/*H=*/33, /*RQ=*/0, /*R=*/1, /*dh=*/64, /*M=*/200, {200, 17}, 13));
}

TEST_CASE("cuda tpa_decode_attention, bf16 factors, matches the CPU: 33 heads (three groups), RQ 20, long rows") {
  // two query-rank steps of 16; B rows by cp.async, A rows (33 values) by scalar copies; many chunks
  check_bf16_gpu_matches_cpu(random_call(/*H=*/33, /*RQ=*/20, /*R=*/1, /*dh=*/64, /*M=*/5000, {5000, 129, 64}, 14));
}

TEST_CASE("cuda tpa_decode_attention, bf16 factors, matches the CPU: the FlashTPA benchmark shape") {
  // H=32, dh=64, RQ=16, R=1: every copy by cp.async; rows of a chunk and a stage plus one
  check_bf16_gpu_matches_cpu(random_call(/*H=*/32, /*RQ=*/16, /*R=*/1, /*dh=*/64, /*M=*/6000, {6000, 4097, 65}, 15));
}

TEST_CASE("cuda tpa_decode_attention, bf16 factors, matches the CPU: the paper's small T6 head shapes") {
  // H·R = 68 is whole 8-byte pieces, not 16-byte ones: the A rows by 8-byte cp.async
  check_bf16_gpu_matches_cpu(random_call(/*H=*/34, /*RQ=*/6, /*R=*/2, /*dh=*/64, /*M=*/1100, {1100, 3, 517, 64}, 19));
}

TEST_CASE("cuda tpa_decode_attention, bf16 factors, matches the CPU: a short cache merged by clusters, and past it") {
  // M ≤ 2048 and more split blocks than run at once (here 5 × 32 of the paper's small T6, one per SM;
  // 9 × 32 of the small heads, two per SM): each row's ≤ 8 blocks merge as a cluster, the rows of 1, 3
  // and 70 tokens leaving most of their cluster's blocks empty. M = 2049: the split and the merge kernel.
  check_bf16_gpu_matches_cpu(
      random_call(/*H=*/34, /*RQ=*/6, /*R=*/2, /*dh=*/64, /*M=*/2048, {2048, 1, 70, 2000, 3}, 20));
  check_bf16_gpu_matches_cpu(
      random_call(/*H=*/34, /*RQ=*/6, /*R=*/2, /*dh=*/64, /*M=*/2049, {2049, 1, 70, 2000, 3}, 21));
  check_bf16_gpu_matches_cpu(
      random_call(/*H=*/5, /*RQ=*/0, /*R=*/3, /*dh=*/38, /*M=*/2048, {1, 2048, 700, 3, 2047, 64, 65, 1000, 2}, 22));
}

TEST_CASE("cuda tpa_decode_attention, bf16 factors, matches the CPU: head_dim 16, 24 and 128") {
  check_bf16_gpu_matches_cpu(random_call(/*H=*/16, /*RQ=*/4, /*R=*/2, /*dh=*/16, /*M=*/100, {100, 7}, 16));
  check_bf16_gpu_matches_cpu(random_call(/*H=*/34, /*RQ=*/6, /*R=*/2, /*dh=*/24, /*M=*/130, {130, 1}, 17));
  check_bf16_gpu_matches_cpu(random_call(/*H=*/16, /*RQ=*/0, /*R=*/2, /*dh=*/128, /*M=*/100, {100, 7}, 18));
}

TEST_CASE("cuda tpa_decode_attention takes float32 or bf16 factors and a float32 out, with a clear error") {
  const DecodeCall c = random_call(5, 4, 3, 38, 8, {8}, 7);
  Tensor out = empty({1, 5, 38}, DType::F64, Device::CUDA);
  auto f64 = [](const Tensor& t) { return t.to_device(Device::CUDA).to_dtype(DType::F64); };
  CHECK_THROWS_WITH_AS(backend(Device::CUDA).tpa_decode_attention(c.p, f64(c.a_q), f64(c.b_q), f64(c.a_k),
                                                                   f64(c.b_k), f64(c.a_v), f64(c.b_v),
                                                                   c.lengths.to_device(Device::CUDA), out),
                       doctest::Contains("tpa_decode_attention: dtype float64 is not supported"), Error);
  // bf16 factors write a float32 out; a bf16 out, or factors of two dtypes, are refused
  const DecodeCall h = bf16_call(c);
  auto gpu = [](const Tensor& t) { return t.to_device(Device::CUDA); };
  Tensor half_out = empty({1, 5, 38}, DType::BF16, Device::CUDA);
  CHECK_THROWS_WITH_AS(backend(Device::CUDA).tpa_decode_attention(h.p, gpu(h.a_q), gpu(h.b_q), gpu(h.a_k),
                                                                   gpu(h.b_k), gpu(h.a_v), gpu(h.b_v),
                                                                   gpu(h.lengths), half_out),
                       doctest::Contains("tpa_decode_attention: dtype bfloat16 is not supported"), Error);
  Tensor f32_out = empty({1, 5, 38}, DType::F32, Device::CUDA);
  CHECK_THROWS_WITH_AS(backend(Device::CUDA).tpa_decode_attention(h.p, gpu(h.a_q), gpu(h.b_q), gpu(c.a_k),
                                                                   gpu(h.b_k), gpu(h.a_v), gpu(h.b_v),
                                                                   gpu(h.lengths), f32_out),
                       doctest::Contains("tpa_decode_attention (factors): dtype float32 is not supported"), Error);
}

TEST_CASE("a tiny model on the GPU: decode-step logits equal its own full forward's at every position") {
  // Prompts of 1, 6 and 13 tokens, each row then fed 20 more through decode steps: caches of up to 33
  // tokens (more than one tile) in rows of different lengths. Decoded by the modules, and by the fused
  // decode step (nn/fused_decode.h) over float32 weights and over their bfloat16 copy, with a float32
  // cache and with the bfloat16 cache generation keeps (the tensor-core FlashTPA).
  const std::vector<int64_t> prompts = {1, 6, 13};
  const int64_t B = 3, longest_prompt = 13, steps = 20;
  for (const std::string& attention : std::vector<std::string>{"tpa", "tpa_kvonly"})
  for (const std::string path : {"modules", "fused float32", "fused bfloat16", "fused bfloat16, bfloat16 cache"}) {
    INFO("attention " << attention << ", decoded by " << path);
    const ModelConfig config = tiny_config(attention);
    const int64_t V = config.vocab_size;
    T6Model model(config);
    Generator gen(7);
    model.fill_uniform(gen, 0.5);  // the spec's init zeroes both c_proj layers, which would hide attention
    model.to(Device::CUDA);
    std::optional<DecodeWeights> fused;
    if (path != "modules") fused = decode_weights(model, path == "fused float32" ? DType::F32 : DType::BF16);
    const bool bf16_cache = path == "fused bfloat16, bfloat16 cache";
    std::vector<std::vector<int32_t>> rows(B);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < prompts[b] + steps; ++t) rows[b].push_back(static_cast<int32_t>(gen.below(V)));

    // prefill the prompts, right-padded, then decode the rest: each row's logits from its last prompt
    // token on, as nn/generate.cpp runs them
    std::vector<int32_t> padded(B * longest_prompt, 0);
    for (int64_t b = 0; b < B; ++b) std::copy_n(rows[b].begin(), prompts[b], padded.begin() + b * longest_prompt);
    KVCache cache(config, B, longest_prompt + steps, Device::CUDA, bf16_cache ? DType::BF16 : DType::F32);
    std::vector<std::vector<double>> decoded(B);
    auto append = [&](const Tensor& logits) {  // (B,V)
      REQUIRE(logits.device() == Device::CUDA);
      const std::vector<double> v = logits.to_double_vector();
      for (int64_t b = 0; b < B; ++b) decoded[b].insert(decoded[b].end(), v.begin() + b * V, v.begin() + (b + 1) * V);
    };
    append(model.prefill(from_ints(padded, {B, longest_prompt}), prompts, cache));
    for (int64_t s = 0; s < steps; ++s) {
      std::vector<int32_t> next(B);
      for (int64_t b = 0; b < B; ++b) next[b] = rows[b][prompts[b] + s];
      append(model.decode_step(from_ints(next, {B}), cache, fused ? &*fused : nullptr));
    }

    for (int64_t b = 0; b < B; ++b) {
      INFO("row " << b << ", prompt of " << prompts[b]);
      const int64_t T = prompts[b] + steps;
      const std::vector<double> full = model.forward(from_ints(rows[b], {1, T})).logits.to_double_vector();
      const std::vector<double> expected(full.begin() + (prompts[b] - 1) * V, full.end());
      // Two float32 GPU paths through the same weights, two layers deep: the decode kernel against the
      // forward's attention over materialized heads, with logits up to ~6. Their gap is float32 rounding,
      // amplified by the random weights: the same comparison on the CPU reaches 1.1e-5, and 1e-4 leaves
      // room for cuBLAS's other summation orders. Weights rounded to bfloat16 (relative error up to
      // 2^-9) move these logits by up to 0.074 (scaled; the CPU twin on the same model): 0.15 leaves a
      // margin of 2.
      // The bfloat16 cache rounds the cached and query factors once more: 0.117 on the CPU twin (same
      // model), and the tensor-core FlashTPA's own bf16 rounding on top (core/backend.h): 0.25.
      CHECK(max_scaled_error(decoded[b], expected) <= (bf16_cache ? 0.25 : path == "fused bfloat16" ? 0.15 : 1e-4));
    }
  }
}

TEST_CASE("cuda scatter_rows matches the CPU (the decode step's cache write)") {
  Generator gen(21);
  const int64_t B = 5, M = 37, n = 19;
  const Tensor values = uniform({B, n}, -1, 1, gen), buffer = uniform({B, M, n}, -1, 1, gen);
  const Tensor slots = from_ints({0, 36, 7, 7, 20}, {B});
  Tensor on_cpu = buffer.clone_data(), on_gpu = buffer.to_device(Device::CUDA);
  backend(Device::CPU).scatter_rows(values, slots, on_cpu);
  backend(Device::CUDA).scatter_rows(values.to_device(Device::CUDA), slots.to_device(Device::CUDA), on_gpu);
  CHECK(on_gpu.to_double_vector() == on_cpu.to_double_vector());  // moves bits: exactly equal
}

TEST_CASE("decode steps replayed as a CUDA graph give the eager steps' logits, rows of different lengths") {
  const std::vector<int64_t> prompts = {1, 6, 13};
  const int64_t B = 3, longest_prompt = 13, steps = 12;
  for (const std::string& attention : std::vector<std::string>{"tpa", "tpa_kvonly", "mha"}) {
    INFO("attention " << attention);
    const ModelConfig config = tiny_config(attention);
    T6Model model(config);
    Generator gen(8);
    model.fill_uniform(gen, 0.5);
    model.to(Device::CUDA);
    std::vector<int32_t> padded(B * longest_prompt);
    for (int32_t& id : padded) id = static_cast<int32_t>(gen.below(config.vocab_size));
    std::vector<std::vector<int32_t>> feed(steps, std::vector<int32_t>(B));
    for (auto& row : feed)
      for (int32_t& id : row) id = static_cast<int32_t>(gen.below(config.vocab_size));

    // the eager steps of the path DecodeGraph takes: the fused step over the same copy of the weights
    // for the factorized attentions, the modules for the others
    std::optional<DecodeWeights> fused;
    if (config.factorized_kv()) fused = decode_weights(model, decode_weight_dtype(model));
    std::vector<double> eager, replayed;
    std::vector<Tensor> graph_logits;
    for (int path = 0; path < 2; ++path) {
      KVCache cache(config, B, longest_prompt + steps, Device::CUDA, decode_cache_dtype(model));
      model.prefill(from_ints(padded, {B, longest_prompt}), prompts, cache);
      DecodeGraph graph(model, cache);
      std::vector<double>& out = path == 0 ? eager : replayed;
      for (const auto& tokens : feed) {
        const Tensor logits = path == 0 ? model.decode_step(from_ints(tokens, {B}), cache, fused ? &*fused : nullptr)
                                        : graph.step(tokens);
        if (path == 1) graph_logits.push_back(logits);
        const std::vector<double> v = logits.to_double_vector();
        out.insert(out.end(), v.begin(), v.end());
      }
      // The fused step launches six kernels per layer (FlashTPA two of them, the embedding folded into
      // the first layer's factors) and the head.
      if (path == 1 && fused) {
        CHECK(graph.operations_per_step() == 6 * config.n_layer + 1);
      }
    }
    // Graphs serve the factorized attentions only: every replayed step (from the second on, the first
    // runs eagerly) writes the captured step's output buffer, where eager steps each allocate their own.
    CHECK(graph_logits[1].same_storage(graph_logits.back()) == (attention != "mha"));
    // The same kernels on the same inputs: equal to the bit.
    CHECK(max_scaled_error(replayed, eager) == 0.0);
  }
}

}  // TEST_SUITE
