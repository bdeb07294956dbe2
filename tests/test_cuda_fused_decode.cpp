// The fused decode step's kernels on the GPU (cuda/kernels_decode.cu) against their CPU twins, with
// float32 weights and their bfloat16 copies, on awkward sizes: K of 37 (the scalar loop) and multiples
// of 8 (16-byte loads), odd output counts (a warp's second row repeats the last), batches of 1 to 11
// rows (more than one block of 8 rows along grid y). Skipped (reported as skipped) without a GPU.
#include <doctest/doctest.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "test_helpers.h"

using namespace t6;
using t6::testing::max_scaled_error;

namespace {

// The GPU sums each product in float32 in another order (per-lane partial sums, then the warp) than
// the CPU (BLAS in float32 for float32 weights, a loop in double for bfloat16 ones): K ≤ 64 products of inputs in [−1, 1) lose ~1e-6 of their sum's size, and RoPE's
// sincosf differs from the host's sinf/cosf by an ulp or two.
constexpr double kTolerance = 2e-5;

Tensor gpu(const Tensor& t) { return t.defined() ? t.to_device(Device::CUDA) : Tensor(); }

void check_same(const Tensor& on_gpu, const Tensor& on_cpu) {
  const std::vector<double> g = on_gpu.to_double_vector(), c = on_cpu.to_double_vector();
  int64_t non_finite = 0;
  for (double v : g) non_finite += std::isfinite(v) ? 0 : 1;
  CHECK(non_finite == 0);  // max_scaled_error would pass over NaN
  CHECK(max_scaled_error(g, c) <= kTolerance);
}

// A weight (rows, K) of uniform [−1, 1) values, float32 or rounded to bfloat16, on the CPU.
Tensor weight(int64_t rows, int64_t K, DType dtype, Generator& gen) {
  return uniform({rows, K}, -1, 1, gen).to_dtype(dtype);
}

const std::vector<int64_t> kBatches = {1, 2, 3, 8, 11};
const std::vector<int64_t> kWidths = {37, 64};

}  // namespace

TEST_SUITE("cuda fused decode" * t6::testing::needs_cuda()) {

TEST_CASE("cuda decode_linear matches the CPU: with and without rms_norm and a residual") {
  Generator gen(31);
  for (DType wt : {DType::F32, DType::BF16})
    for (int64_t B : kBatches)
      for (int64_t K : kWidths) {
        INFO("weights " << std::string(dtype_name(wt)) << ", B " << B << ", K " << K);
        const int64_t N = 29;
        const Tensor x = uniform({B, K}, -1, 1, gen), w = weight(N, K, wt, gen), residual = uniform({B, N}, -1, 1, gen);
        for (bool normalize : {false, true}) {
          const std::optional<double> eps = normalize ? std::optional<double>(1e-6) : std::nullopt;
          const Tensor r = normalize ? Tensor() : residual;  // the model's two uses: head, and output projections
          Tensor on_cpu = empty({B, N}), on_gpu = empty({B, N}, DType::F32, Device::CUDA);
          backend(Device::CPU).decode_linear(x, w, r, eps, on_cpu);
          backend(Device::CUDA).decode_linear(gpu(x), gpu(w), gpu(r), eps, on_gpu);
          check_same(on_gpu, on_cpu);
        }
      }
}

TEST_CASE("cuda decode_linear matches the CPU: a head-sized product at batches of 5 to 11 (four rows per warp)") {
  // N past 4 rows × 8 warps × the multiprocessors of any current GPU (≤ 144), N % 4 = 3: the last warp
  // repeats its last row
  Generator gen(35);
  for (DType wt : {DType::F32, DType::BF16})
    for (int64_t B : {5, 8, 11})
      for (int64_t K : kWidths) {
        INFO("weights " << std::string(dtype_name(wt)) << ", B " << B << ", K " << K);
        const int64_t N = 4651;
        const Tensor x = uniform({B, K}, -1, 1, gen), w = weight(N, K, wt, gen), residual = uniform({B, N}, -1, 1, gen);
        for (bool normalize : {false, true}) {
          const std::optional<double> eps = normalize ? std::optional<double>(1e-6) : std::nullopt;
          const Tensor r = normalize ? Tensor() : residual;
          Tensor on_cpu = empty({B, N}), on_gpu = empty({B, N}, DType::F32, Device::CUDA);
          backend(Device::CPU).decode_linear(x, w, r, eps, on_cpu);
          backend(Device::CUDA).decode_linear(gpu(x), gpu(w), gpu(r), eps, on_gpu);
          check_same(on_gpu, on_cpu);
        }
      }
}

TEST_CASE("cuda decode_swiglu matches the CPU") {
  Generator gen(32);
  for (DType wt : {DType::F32, DType::BF16})
    for (int64_t B : kBatches)
      for (int64_t K : kWidths) {
        INFO("weights " << std::string(dtype_name(wt)) << ", B " << B << ", K " << K);
        const int64_t F = 23;
        const Tensor x = uniform({B, K}, -1, 1, gen), gate = weight(F, K, wt, gen), up = weight(F, K, wt, gen);
        Tensor on_cpu = empty({B, F}), on_gpu = empty({B, F}, DType::F32, Device::CUDA);
        backend(Device::CPU).decode_swiglu(x, gate, up, 1e-6, on_cpu);
        backend(Device::CUDA).decode_swiglu(gpu(x), gpu(gate), gpu(up), 1e-6, on_gpu);
        check_same(on_gpu, on_cpu);
      }
}

TEST_CASE("cuda decode_tpa_factors matches the CPU: factorized and plain queries, every cache slot") {
  Generator gen(33);
  const int64_t H = 5, R = 3, dh = 38, M = 9;
  for (int64_t RQ : {4, 0})
    for (DType wt : {DType::F32, DType::BF16})
      for (int64_t B : {1, 3, 9})
        for (int64_t K : {37, 40}) {
          INFO("q_rank " << RQ << ", weights " << std::string(dtype_name(wt)) << ", B " << B << ", K " << K);
          Backend::TPAFactors p;
          p.batch = B, p.d = K, p.heads = H, p.q_rank = RQ, p.rank = R, p.head_dim = dh, p.capacity = M;
          p.norm_eps = 1e-6;
          const int64_t N = H * RQ + 2 * H * R + 2 * R * dh + (RQ > 0 ? RQ * dh : H * dh);
          const Tensor x = uniform({B, K}, -1, 1, gen), w = weight(N, K, wt, gen);
          std::vector<int32_t> slots(static_cast<size_t>(B));
          for (int64_t b = 0; b < B; ++b) slots[b] = static_cast<int32_t>((5 * b + 8) % M);  // the last slot too
          const Tensor positions = from_ints(slots, {B});
          // outputs: a_q, q, and the four cache buffers, which start random (untouched slots must stay)
          std::vector<Tensor> cpu_out = {RQ > 0 ? empty({B, H, RQ}) : Tensor(),
                                         empty(RQ > 0 ? Shape{B, RQ, dh} : Shape{B, H, dh}),
                                         uniform({B, M, H, R}, -1, 1, gen), uniform({B, M, R, dh}, -1, 1, gen),
                                         uniform({B, M, H, R}, -1, 1, gen), uniform({B, M, R, dh}, -1, 1, gen)};
          std::vector<Tensor> gpu_out;
          for (const Tensor& t : cpu_out) gpu_out.push_back(gpu(t));
          Tensor x_cpu = x.clone_data(), x_gpu = gpu(x);
          backend(Device::CPU).decode_tpa_factors(p, x_cpu, Tensor(), Tensor(), w, positions, cpu_out[0], cpu_out[1],
                                                  cpu_out[2], cpu_out[3], cpu_out[4], cpu_out[5]);
          backend(Device::CUDA).decode_tpa_factors(p, x_gpu, Tensor(), Tensor(), gpu(w), gpu(positions), gpu_out[0],
                                                   gpu_out[1], gpu_out[2], gpu_out[3], gpu_out[4], gpu_out[5]);
          for (size_t i = RQ > 0 ? 0 : 1; i < cpu_out.size(); ++i) {
            INFO("output " << i << " (a_q, q, a_k, b_k, a_v, b_v)");
            check_same(gpu_out[i], cpu_out[i]);
          }
        }
}

TEST_CASE("cuda decode_tpa_factors matches the CPU: bfloat16 outputs (a bfloat16 cache), the embedding looked up") {
  // The products agree to float32 rounding (kTolerance) before each is rounded to bfloat16 once; a value
  // that lies that close to a rounding boundary rounds the other way on one side: one bfloat16 step,
  // 2^-8 of its size at most.
  constexpr double kBf16Tolerance = 1.0 / 128;
  Generator gen(34);
  const int64_t H = 5, R = 3, dh = 38, M = 9, V = 13;
  for (int64_t RQ : {4, 0})
    for (bool look_up : {false, true})
      for (int64_t B : {1, 3, 9})
        for (int64_t K : {37, 40}) {
          INFO("q_rank " << RQ << ", embedding " << look_up << ", B " << B << ", K " << K);
          Backend::TPAFactors p;
          p.batch = B, p.d = K, p.heads = H, p.q_rank = RQ, p.rank = R, p.head_dim = dh, p.capacity = M;
          p.norm_eps = 1e-6;
          const int64_t N = H * RQ + 2 * H * R + 2 * R * dh + (RQ > 0 ? RQ * dh : H * dh);
          const Tensor w = weight(N, K, DType::BF16, gen), embedding = uniform({V, K}, -1, 1, gen);
          std::vector<int32_t> slots(static_cast<size_t>(B)), ids(static_cast<size_t>(B));
          for (int64_t b = 0; b < B; ++b) {
            slots[b] = static_cast<int32_t>((5 * b + 8) % M);
            ids[b] = static_cast<int32_t>((7 * b + 12) % V);  // the last row too
          }
          const Tensor positions = from_ints(slots, {B}), tokens = from_ints(ids, {B});
          // With the lookup, x starts as anything: the kernels overwrite it.
          Tensor x_cpu = uniform({B, K}, -1, 1, gen), x_gpu = gpu(look_up ? uniform({B, K}, -1, 1, gen) : x_cpu);
          const Tensor table = look_up ? embedding : Tensor();
          auto bf16 = [](const Tensor& t) { return t.to_dtype(DType::BF16); };
          std::vector<Tensor> cpu_out = {RQ > 0 ? empty({B, H, RQ}, DType::BF16) : Tensor(),
                                         empty(RQ > 0 ? Shape{B, RQ, dh} : Shape{B, H, dh}, DType::BF16),
                                         bf16(uniform({B, M, H, R}, -1, 1, gen)),
                                         bf16(uniform({B, M, R, dh}, -1, 1, gen)),
                                         bf16(uniform({B, M, H, R}, -1, 1, gen)),
                                         bf16(uniform({B, M, R, dh}, -1, 1, gen))};
          std::vector<Tensor> gpu_out;
          for (const Tensor& t : cpu_out) gpu_out.push_back(gpu(t));
          backend(Device::CPU).decode_tpa_factors(p, x_cpu, table, tokens, w, positions, cpu_out[0], cpu_out[1],
                                                  cpu_out[2], cpu_out[3], cpu_out[4], cpu_out[5]);
          backend(Device::CUDA).decode_tpa_factors(p, x_gpu, gpu(table), gpu(tokens), gpu(w), gpu(positions),
                                                   gpu_out[0], gpu_out[1], gpu_out[2], gpu_out[3], gpu_out[4],
                                                   gpu_out[5]);
          CHECK(x_gpu.to_double_vector() == x_cpu.to_double_vector());  // the lookup moves bits
          for (size_t i = RQ > 0 ? 0 : 1; i < cpu_out.size(); ++i) {
            INFO("output " << i << " (a_q, q, a_k, b_k, a_v, b_v)");
            REQUIRE(gpu_out[i].dtype() == DType::BF16);
            CHECK(max_scaled_error(gpu_out[i].to_double_vector(), cpu_out[i].to_double_vector()) <= kBf16Tolerance);
          }
        }
}

}  // TEST_SUITE
