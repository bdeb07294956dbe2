// The fused causal attention op (autograd/ops/flash_attention.cpp): forward values against plain
// loops written here, equality with the composite path nn/causal_attention.cpp keeps, float64
// gradient checks; then the CUDA kernels (cuda/kernels_flash_attention.cu) against the CPU twin on
// awkward sizes, in fp32 (plain kernels) and under bf16 mixed precision (tensor-core kernels). The
// GPU suite is skipped where no CUDA GPU is present.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/mixed_precision.h"
#include "core/backend.h"
#include "nn/causal_attention.h"
#include "tests/test_helpers.h"

using namespace t6;
using t6::testing::check_close;
using t6::testing::check_gradients;
using t6::testing::max_scaled_error;
using t6::testing::random_leaf;

namespace {

struct AttentionShape {
  int64_t B, Tq, Tk, H, Hkv, dh;
};

// softmax(scale · q kᵀ, causal) v by plain loops over q (B,Tq,H,dh), k and v (B,Tk,Hkv,dh), returning
// (B,Tq,H·dh) and, in lse, log Σ_j exp(scale · q·k_j) per (b, h, i).
std::vector<double> attention_by_loops(const AttentionShape& s, const std::vector<double>& q,
                                       const std::vector<double>& k, const std::vector<double>& v, double scale,
                                       std::vector<double>& lse) {
  std::vector<double> out(static_cast<size_t>(s.B * s.Tq * s.H * s.dh), 0.0);
  lse.assign(static_cast<size_t>(s.B * s.H * s.Tq), 0.0);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h)
      for (int64_t i = 0; i < s.Tq; ++i) {
        const int64_t hk = h / (s.H / s.Hkv), last = i + s.Tk - s.Tq;
        std::vector<double> logits;
        for (int64_t j = 0; j <= last; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < s.dh; ++d)
            dot += q[((b * s.Tq + i) * s.H + h) * s.dh + d] * k[((b * s.Tk + j) * s.Hkv + hk) * s.dh + d];
          logits.push_back(scale * dot);
        }
        double norm = 0;
        for (double x : logits) norm += std::exp(x);
        lse[(b * s.H + h) * s.Tq + i] = std::log(norm);
        for (int64_t j = 0; j <= last; ++j)
          for (int64_t d = 0; d < s.dh; ++d)
            out[((b * s.Tq + i) * s.H + h) * s.dh + d] +=
                std::exp(logits[j]) / norm * v[((b * s.Tk + j) * s.Hkv + hk) * s.dh + d];
      }
  return out;
}

struct Inputs {
  Tensor q, k, v;
};
Inputs random_inputs(const AttentionShape& s, Generator& gen, double range = 1.0) {
  return {random_leaf({s.B, s.Tq, s.H, s.dh}, gen, -range, range),
          random_leaf({s.B, s.Tk, s.Hkv, s.dh}, gen, -range, range),
          random_leaf({s.B, s.Tk, s.Hkv, s.dh}, gen, -range, range)};
}


// flash_attention's gradients equal the composite path's, to rounding, under a random upstream gradient.
void check_gradients_equal_composite(const AttentionShape& s, const Inputs& in, double scale, Generator& gen) {
  Tensor g = uniform({s.B, s.Tq, s.H * s.dh}, -1, 1, gen, DType::F64);
  std::vector<std::vector<double>> grads[2];
  for (int path = 0; path < 2; ++path) {
    for (Tensor t : {in.q, in.k, in.v}) t.zero_grad();
    const Tensor y = path == 0 ? flash_attention(in.q, in.k, in.v, scale) : composite_causal_attention(in.q, in.k, in.v, scale);
    sum(mul(y, g)).backward();
    for (const Tensor& t : {in.q, in.k, in.v}) grads[path].push_back(t.grad().to_double_vector());
  }
  for (size_t i = 0; i < 3; ++i) CHECK(max_scaled_error(grads[0][i], grads[1][i]) < 1e-12);
}
}  // namespace

TEST_CASE("flash_attention equals plain loops and the composite path, with MHA, GQA and fewer queries than keys") {
  Generator gen(3);
  for (const AttentionShape& s : {AttentionShape{2, 5, 5, 3, 3, 4}, AttentionShape{1, 7, 7, 4, 2, 6},
                                  AttentionShape{2, 3, 8, 2, 1, 5}}) {
    CAPTURE(s.Tq); CAPTURE(s.Tk); CAPTURE(s.H); CAPTURE(s.Hkv);
    const Inputs in = random_inputs(s, gen, 2.0);
    const double scale = 0.7;
    std::vector<double> lse;
    const std::vector<double> expected =
        attention_by_loops(s, in.q.to_double_vector(), in.k.to_double_vector(), in.v.to_double_vector(), scale, lse);
    check_close(flash_attention(in.q, in.k, in.v, scale), expected, 1e-13);
    check_close(composite_causal_attention(in.q, in.k, in.v, scale), expected, 1e-13);

    // lse straight from the kernel
    Backend::FlashAttention p{s.B, s.Tq, s.Tk, s.H, s.Hkv, s.dh, scale};
    Tensor out = empty({s.B, s.Tq, s.H, s.dh}, DType::F64), lse_out = empty({s.B, s.H, s.Tq}, DType::F64);
    backend(Device::CPU).flash_attention_forward(p, in.q, in.k, in.v, out, lse_out);
    check_close(lse_out, lse, 1e-13);

    // float32 agrees with the float64 loops to float32 rounding
    check_close(flash_attention(in.q.to_dtype(DType::F32), in.k.to_dtype(DType::F32), in.v.to_dtype(DType::F32), scale),
                expected, 1e-5);
  }
}

TEST_CASE("flash_attention gradients: float64 finite differences, and equal to the composite path's") {
  Generator gen(4);
  for (const AttentionShape& s : {AttentionShape{2, 4, 4, 2, 2, 3}, AttentionShape{1, 5, 5, 4, 2, 4},
                                  AttentionShape{2, 2, 5, 2, 1, 3}}) {
    CAPTURE(s.Tq); CAPTURE(s.Tk); CAPTURE(s.H); CAPTURE(s.Hkv);
    const Inputs in = random_inputs(s, gen);
    check_gradients([](const std::vector<Tensor>& x) { return flash_attention(x[0], x[1], x[2], 0.8); },
                    {in.q, in.k, in.v});
    check_gradients_equal_composite(s, in, 0.8, gen);
  }
}

// The CPU kernels take queries 64 at a time, each block with only the keys its last query sees: these
// shapes cross block boundaries, end in a partial block, and put the queries after the keys' start.
TEST_CASE("flash_attention over several blocks of queries: plain loops, the composite's gradients, finite differences") {
  Generator gen(5);
  for (const AttentionShape& s : {AttentionShape{2, 150, 150, 3, 3, 5}, AttentionShape{1, 70, 150, 4, 2, 6},
                                  AttentionShape{1, 129, 129, 2, 1, 4}}) {
    CAPTURE(s.Tq); CAPTURE(s.Tk); CAPTURE(s.H); CAPTURE(s.Hkv);
    const Inputs in = random_inputs(s, gen, 2.0);
    std::vector<double> lse;
    check_close(flash_attention(in.q, in.k, in.v, 0.6),
                attention_by_loops(s, in.q.to_double_vector(), in.k.to_double_vector(), in.v.to_double_vector(), 0.6,
                                   lse),
                1e-13);
    check_gradients_equal_composite(s, in, 0.6, gen);
  }
  const Inputs small = random_inputs(AttentionShape{1, 67, 67, 2, 1, 3}, gen);
  check_gradients([](const std::vector<Tensor>& x) { return flash_attention(x[0], x[1], x[2], 0.8); },
                  {small.q, small.k, small.v});
}

TEST_CASE("flash_attention rejects shapes that do not fit, naming them") {
  CHECK_THROWS_WITH_AS(flash_attention(zeros({1, 4, 3, 8}), zeros({1, 4, 2, 8}), zeros({1, 4, 2, 8}), 1.0),
                       doctest::Contains("kv heads must divide the query heads"), Error);
  CHECK_THROWS_WITH_AS(flash_attention(zeros({1, 5, 2, 8}), zeros({1, 4, 2, 8}), zeros({1, 4, 2, 8}), 1.0),
                       doctest::Contains("Tq ≤ Tk"), Error);
  CHECK_THROWS_WITH_AS(flash_attention(zeros({1, 4, 2, 8}), zeros({1, 4, 2, 8}), zeros({1, 4, 2, 6}), 1.0),
                       doctest::Contains("of one shape"), Error);
}

TEST_SUITE("cuda flash attention" * t6::testing::needs_cuda()) {

namespace {

struct GpuRun {
  std::vector<double> out, gq, gk, gv;
};

// The op forward and backward with a fixed random upstream gradient, on `device`.
GpuRun run_op(const Inputs& cpu_inputs, const Tensor& upstream, double scale, Device device, DType dtype) {
  std::vector<Tensor> in;
  for (const Tensor& t : {cpu_inputs.q, cpu_inputs.k, cpu_inputs.v}) {
    Tensor moved = t.to_dtype(dtype).to_device(device);
    moved.set_requires_grad(true);
    in.push_back(moved);
  }
  const Tensor y = flash_attention(in[0], in[1], in[2], scale);
  sum(mul(y, upstream.to_dtype(dtype).to_device(device))).backward();
  return {y.to_double_vector(), in[0].grad().to_double_vector(), in[1].grad().to_double_vector(),
          in[2].grad().to_double_vector()};
}

void compare(const GpuRun& gpu, const GpuRun& cpu, double forward_tol, double backward_tol) {
  CHECK(max_scaled_error(gpu.out, cpu.out) <= forward_tol);
  CHECK(max_scaled_error(gpu.gq, cpu.gq) <= backward_tol);
  CHECK(max_scaled_error(gpu.gk, cpu.gk) <= backward_tol);
  CHECK(max_scaled_error(gpu.gv, cpu.gv) <= backward_tol);
}

}  // namespace

TEST_CASE("fp32 plain kernels equal the CPU twin (awkward sizes, GQA, fewer queries than keys, float64)") {
  Generator gen(11);
  // fp32: forward ≤ 1e-5 (a reduction), backward ≤ 1e-4 (matmul-like sums over the keys)
  for (const AttentionShape& s : {AttentionShape{2, 77, 77, 3, 3, 40}, AttentionShape{1, 130, 130, 6, 2, 24},
                                  AttentionShape{2, 33, 100, 4, 1, 64}, AttentionShape{1, 70, 70, 2, 2, 128}}) {
    CAPTURE(s.Tq); CAPTURE(s.Tk); CAPTURE(s.H); CAPTURE(s.Hkv); CAPTURE(s.dh);
    const Inputs in = random_inputs(s, gen, 2.0);
    const Tensor upstream = uniform({s.B, s.Tq, s.H * s.dh}, -1, 1, gen, DType::F64);
    const double scale = 1.0 / std::sqrt(static_cast<double>(s.dh));
    compare(run_op(in, upstream, scale, Device::CUDA, DType::F32), run_op(in, upstream, scale, Device::CPU, DType::F32),
            1e-5, 1e-4);
    // float64 runs the same plain kernels in double: agreement to double rounding
    compare(run_op(in, upstream, scale, Device::CUDA, DType::F64), run_op(in, upstream, scale, Device::CPU, DType::F64),
            1e-12, 1e-12);
  }
}

TEST_CASE("bf16 tensor-core kernels stay within 2e-2 of the CPU's float32 (head_dim 32, 64, 128; 40 upcast)") {
  Generator gen(12);
  // head_dim 40 has no tensor-core kernel: its bfloat16 copies go through the plain float32 kernels
  for (const AttentionShape& s : {AttentionShape{2, 100, 100, 3, 3, 64}, AttentionShape{1, 130, 130, 4, 2, 32},
                                  AttentionShape{2, 37, 150, 2, 1, 128}, AttentionShape{1, 64, 64, 1, 1, 64},
                                  AttentionShape{1, 70, 70, 2, 2, 40}}) {
    CAPTURE(s.Tq); CAPTURE(s.Tk); CAPTURE(s.H); CAPTURE(s.Hkv); CAPTURE(s.dh);
    const Inputs in = random_inputs(s, gen, 2.0);  // peaked attention rows, not near-uniform ones
    const Tensor upstream = uniform({s.B, s.Tq, s.H * s.dh}, -1, 1, gen, DType::F64);
    const double scale = 1.0 / std::sqrt(static_cast<double>(s.dh));
    const GpuRun cpu = run_op(in, upstream, scale, Device::CPU, DType::F32);
    GpuRun gpu;
    {
      const Bf16MatmulGuard bf16;
      gpu = run_op(in, upstream, scale, Device::CUDA, DType::F32);
    }
    compare(gpu, cpu, 2e-2, 2e-2);
  }
}

TEST_CASE("bf16 one-pass backward: several key blocks and query tiles (ragged, GQA, offset), gq overwritten") {
  Generator gen(14);
  // Blocks of 128 keys walking 64-query tiles: 300 keys are two whole blocks and 44 more, whose gq
  // additions land on the same query rows; 129 queries against 257 keys sit at offset 128.
  for (const AttentionShape& s : {AttentionShape{1, 300, 300, 4, 2, 64}, AttentionShape{2, 129, 257, 2, 1, 32},
                                  AttentionShape{1, 200, 200, 2, 2, 128}}) {
    CAPTURE(s.Tq); CAPTURE(s.Tk); CAPTURE(s.H); CAPTURE(s.Hkv); CAPTURE(s.dh);
    const Inputs in = random_inputs(s, gen, 2.0);
    const Tensor upstream = uniform({s.B, s.Tq, s.H * s.dh}, -1, 1, gen, DType::F64);
    const double scale = 1.0 / std::sqrt(static_cast<double>(s.dh));
    const GpuRun cpu = run_op(in, upstream, scale, Device::CPU, DType::F32);
    GpuRun gpu;
    {
      const Bf16MatmulGuard bf16;
      gpu = run_op(in, upstream, scale, Device::CUDA, DType::F32);
    }
    compare(gpu, cpu, 2e-2, 2e-2);

    // The kernel adds into gq: backward must overwrite whatever the tensors held.
    const auto on_gpu = [](const Tensor& t, DType dtype) { return t.to_dtype(dtype).to_device(Device::CUDA); };
    const Tensor q = on_gpu(in.q, DType::BF16), k = on_gpu(in.k, DType::BF16), v = on_gpu(in.v, DType::BF16);
    const Tensor gout = on_gpu(upstream, DType::BF16).view({s.B, s.Tq, s.H, s.dh});
    const Backend::FlashAttention a{s.B, s.Tq, s.Tk, s.H, s.Hkv, s.dh, scale};
    Backend& cuda = backend(Device::CUDA);
    Tensor out = empty({s.B, s.Tq, s.H, s.dh}, DType::F32, Device::CUDA), lse = empty({s.B, s.H, s.Tq}, DType::F32, Device::CUDA);
    cuda.flash_attention_forward(a, q, k, v, out, lse);
    std::vector<std::vector<double>> gq_runs;
    for (const double fill : {0.0, 1e3}) {
      Tensor gq = full(q.shape(), fill, DType::F32, Device::CUDA), gk = full(k.shape(), fill, DType::F32, Device::CUDA),
             gv = full(v.shape(), fill, DType::F32, Device::CUDA);
      cuda.flash_attention_backward(a, q, k, v, out, lse, gout, gq, gk, gv);
      gq_runs.push_back(gq.to_double_vector());
    }
    CHECK(max_scaled_error(gq_runs[1], gq_runs[0]) <= 1e-5);  // equal up to the order of the float32 additions
    CHECK(max_scaled_error(gq_runs[0], gpu.gq) <= 1e-5);

    // gQ is added two values at a time: a gq that starts between two 8-byte boundaries is refused
    const Tensor buffer = empty({q.numel() + 1}, DType::F32, Device::CUDA);
    Tensor misaligned = buffer.as_strided(q.shape(), {s.Tq * s.H * s.dh, s.H * s.dh, s.dh, 1}, 1);
    Tensor gk = empty(k.shape(), DType::F32, Device::CUDA), gv = empty(v.shape(), DType::F32, Device::CUDA);
    CHECK_THROWS_WITH_AS(cuda.flash_attention_backward(a, q, k, v, out, lse, gout, misaligned, gk, gv),
                         doctest::Contains("8-byte boundary"), Error);
  }
}

TEST_CASE("the model's causal attention takes the fused kernel on the GPU and matches the CPU's composite path") {
  Generator gen(13);
  const AttentionShape s{2, 50, 50, 4, 2, 32};
  const Inputs in = random_inputs(s, gen);
  const Tensor expected = composite_causal_attention(in.q, in.k, in.v, 0.5);
  const Tensor on_gpu = causal_attention(in.q.to_device(Device::CUDA), in.k.to_device(Device::CUDA),
                                         in.v.to_device(Device::CUDA), 0.5);
  CHECK(max_scaled_error(on_gpu.to_double_vector(), expected.to_double_vector()) < 1e-12);
}

}  // TEST_SUITE
