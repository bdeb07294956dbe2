// Parity of the CUDA backend with the CPU backend: each kernel runs on both backends from the same
// random inputs of awkward sizes (not multiples of 32), and the results must agree within the
// tolerance written next to each check, as max |gpu − cpu| / max(1, |cpu|). Also the caching
// allocator (blocks are reused, statistics are tracked) and clean errors. Only the Backend interface
// and tensor creation are used, so the file builds without CUDA; the whole suite is reported as
// skipped where no CUDA GPU is present (or the program was built without the CUDA backend).
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "core/random.h"
#include "tests/test_helpers.h"

using namespace t6;
using t6::testing::max_scaled_error;

namespace {

Backend& gpu() { return backend(Device::CUDA); }

struct Results {
  std::vector<Tensor> cpu, gpu;  // the outputs of each backend, in the order given
};

// Runs `kernel` with the CPU backend on `inputs` and with the CUDA backend on copies moved to the
// GPU. Outputs start as copies of `outputs` (so kernels that accumulate, like gemm with beta or
// adamw_step, start from the same values on both).
Results run_on_both(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
                    const std::function<void(Backend&, const std::vector<Tensor>&, std::vector<Tensor>&)>& kernel) {
  Results r;
  std::vector<Tensor> gpu_inputs;
  for (const Tensor& t : inputs) gpu_inputs.push_back(t.to_device(Device::CUDA));
  for (const Tensor& t : outputs) {
    r.cpu.push_back(t.clone_data());
    r.gpu.push_back(t.to_device(Device::CUDA));
  }
  kernel(backend(Device::CPU), inputs, r.cpu);
  kernel(gpu(), gpu_inputs, r.gpu);
  return r;
}

// max |gpu − cpu| / max(1, |cpu|) over output `i`
double gap(const Results& r, size_t i = 0) {
  REQUIRE(r.gpu[i].device() == Device::CUDA);
  return max_scaled_error(r.gpu[i].to_double_vector(), r.cpu[i].to_double_vector());
}

// An (m×n) row-major gemm operand's storage for leading dimension ld, with random padding.
Tensor operand(int64_t batch, int64_t rows, int64_t ld, Generator& gen, DType dtype = DType::F32) {
  return uniform({batch, rows, ld}, -1.0, 1.0, gen, dtype);
}

}  // namespace

TEST_SUITE("cuda backend" * t6::testing::needs_cuda()) {

TEST_CASE("cuda describe names the device") {
  const std::string d = gpu().describe();
  CHECK(d.rfind("cuda:0 (", 0) == 0);
  CHECK(d.find(" SMs, ") != std::string::npos);
  CHECK(d.find(" GiB)") != std::string::npos);
}

TEST_CASE("cuda caching allocator reuses freed blocks and tracks memory") {
  const Backend::MemoryStats before = gpu().memory_stats();
  size_t reserved_after_first = 0;
  for (int i = 0; i < 50; ++i) {
    Tensor a = empty({129, 1000}, DType::F32, Device::CUDA);
    Tensor b = empty({7, 37}, DType::F64, Device::CUDA);
    if (i == 0) reserved_after_first = gpu().memory_stats().reserved_bytes;
  }
  const Backend::MemoryStats after = gpu().memory_stats();
  CHECK(after.reserved_bytes == reserved_after_first);  // no new cudaMalloc after the first round
  CHECK(after.current_bytes == before.current_bytes);
  CHECK(after.peak_bytes >= before.current_bytes + 129 * 1000 * 4 + 7 * 37 * 8);

  // a freed block goes back to the cache and serves the next request of its size
  void* p = gpu().allocate(12345);
  gpu().deallocate(p, 12345);
  void* q = gpu().allocate(12345);
  CHECK(q == p);
  gpu().deallocate(q, 12345);

  // peak tracks the high-water mark of memory handed out
  const size_t current = gpu().memory_stats().current_bytes;
  {
    Tensor big = empty({int64_t{1} << 22}, DType::F32, Device::CUDA);  // 16 MiB
    CHECK(gpu().memory_stats().current_bytes >= current + (size_t{16} << 20));
  }
  CHECK(gpu().memory_stats().current_bytes == current);
  CHECK(gpu().memory_stats().peak_bytes >= current + (size_t{16} << 20));
  CHECK(gpu().memory_stats().reserved_bytes >= gpu().memory_stats().current_bytes);
}

TEST_CASE("cuda out of memory is a clear t6::Error, and the backend still works after it") {
  std::string message;
  try {
    gpu().allocate(size_t{1} << 50);  // 1 PiB
  } catch (const Error& e) {
    message = e.what();
  }
  CHECK(message.find("CUDA out of memory") != std::string::npos);
  CHECK(message.find("tried to allocate 1125899906842624 bytes") != std::string::npos);
  CHECK_THROWS_AS(empty({int64_t{1} << 48}, DType::F32, Device::CUDA), Error);
  const Tensor back = from_vector({1.5, -2.0, 3.25}, {3}, DType::F32, Device::CUDA);
  CHECK(back.to_double_vector() == std::vector<double>{1.5, -2.0, 3.25});
}

TEST_CASE("cuda unsupported dtypes are clear errors") {
  const Tensor x = zeros({7, 37}, DType::F64, Device::CUDA);
  Tensor y = empty({7, 37}, DType::F64, Device::CUDA);
  CHECK_THROWS_WITH_AS(gpu().softmax_forward(x, y, 1.0, false, 0), doctest::Contains("softmax_forward"), Error);
  CHECK_THROWS_WITH_AS(gpu().softmax_forward(x, y, 1.0, false, 0), doctest::Contains("float64"), Error);
  const Tensor a = zeros({7, 37}, DType::F32, Device::CUDA), b = zeros({37, 7}, DType::BF16, Device::CUDA);
  Tensor c = empty({7, 7}, DType::F32, Device::CUDA);
  Backend::Gemm g;
  g.m = 7, g.n = 7, g.k = 37, g.lda = 37, g.ldb = 7, g.ldc = 7;
  CHECK_THROWS_WITH_AS(gpu().gemm(g, a, b, c), doctest::Contains("cuda gemm: unsupported dtypes"), Error);
}

TEST_CASE("cuda fill, cast and strided_copy match the cpu exactly") {
  Generator gen(1);
  for (DType dtype : {DType::F32, DType::F64, DType::I32, DType::BF16}) {
    for (double value : {0.0, 1.0 / 3.0, -3.7, 1e10}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(value);
      const Results r = run_on_both({}, {zeros({7, 37}, dtype)},
                                    [&](Backend& be, const std::vector<Tensor>&, std::vector<Tensor>& out) {
                                      be.fill(out[0], value);
                                    });
      CHECK(gap(r) == 0.0);
    }
  }

  // every pair of dtypes; values span the int32 range's fractional and rounding cases
  const Tensor source = uniform({129, 37}, -300.0, 300.0, gen, DType::F64);
  for (DType from : {DType::F32, DType::F64, DType::I32, DType::BF16}) {
    for (DType to : {DType::F32, DType::F64, DType::I32, DType::BF16}) {
      if (from == to) continue;
      CAPTURE(dtype_name(from));
      CAPTURE(dtype_name(to));
      const Results r = run_on_both({source.to_dtype(from)}, {zeros({129, 37}, to)},
                                    [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                      be.cast(in[0], out[0]);
                                    });
      CHECK(gap(r) == 0.0);
    }
  }
  // float32 → bfloat16 goes four values at a time when the data is aligned: a source one float off
  // a 16-byte boundary, and sizes with a tail, take the other paths
  for (int64_t offset : {0, 1}) {
    for (int64_t n : {4, 7, 4772}) {
      CAPTURE(offset);
      CAPTURE(n);
      const Results r = run_on_both({source.to_dtype(DType::F32)}, {zeros({n}, DType::BF16)},
                                    [&](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                      be.cast(in[0].as_strided({n}, {1}, offset), out[0]);
                                    });
      CHECK(gap(r) == 0.0);
    }
  }

  for (DType dtype : {DType::F32, DType::F64, DType::I32, DType::BF16}) {
    CAPTURE(dtype_name(dtype));
    const Tensor base = uniform({7, 37, 5}, -100.0, 100.0, gen, DType::F64).to_dtype(dtype);
    // a permuted source: [5, 7, 37] view of the [7, 37, 5] storage, into a contiguous destination
    const Results permuted = run_on_both({base}, {zeros({5, 7, 37}, dtype)},
                                         [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                           be.strided_copy(in[0].as_strided({5, 7, 37}, {1, 185, 5}, 0), out[0]);
                                         });
    CHECK(gap(permuted) == 0.0);
    // a sliced source (rows 2..5 of every [37, 5] block) into a transposed, offset destination view
    const Results sliced = run_on_both(
        {base}, {zeros({2 + 7 * 4 * 5}, dtype)},
        [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
          Tensor dst = out[0].as_strided({7, 4, 5}, {1, 7 * 5, 7}, 2);
          be.strided_copy(in[0].as_strided({7, 4, 5}, {185, 5, 1}, 2 * 5), dst);
        });
    CHECK(gap(sliced) == 0.0);
    // both contiguous: the plain device-to-device copy
    const Results plain = run_on_both({base}, {zeros({7, 37, 5}, dtype)},
                                      [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                        be.strided_copy(in[0], out[0]);
                                      });
    CHECK(gap(plain) == 0.0);
  }
}

TEST_CASE("cuda unary and unary_backward match the cpu") {
  Generator gen(2);
  const UnaryOp ops[] = {UnaryOp::Neg,     UnaryOp::Exp,  UnaryOp::Log,   UnaryOp::Sqrt,     UnaryOp::Rsqrt,
                         UnaryOp::Sigmoid, UnaryOp::Silu, UnaryOp::Scale, UnaryOp::AddScalar};
  for (DType dtype : {DType::F32, DType::F64}) {
    // fp32: the GPU's expf/logf are within 2 ulp, glibc's within 1; fp64 agrees to a few ulp
    const double tol = dtype == DType::F32 ? 1e-5 : 1e-13;
    for (UnaryOp op : ops) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(static_cast<int>(op));
      const bool positive = op == UnaryOp::Log || op == UnaryOp::Sqrt || op == UnaryOp::Rsqrt;
      const Tensor x = uniform({129, 1000}, positive ? 0.5 : -3.0, positive ? 2.0 : 3.0, gen, dtype);
      const Results forward = run_on_both({x}, {zeros({129, 1000}, dtype)},
                                          [op](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                            be.unary(op, in[0], out[0], 0.7);
                                          });
      CHECK(gap(forward) <= tol);

      const Tensor gy = uniform({129, 1000}, -1.0, 1.0, gen, dtype);
      const Results backward = run_on_both(
          {x, forward.cpu[0], gy}, {zeros({129, 1000}, dtype)},
          [op](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
            be.unary_backward(op, in[0], in[1], in[2], out[0], 0.7);
          });
      CHECK(gap(backward) <= tol);
    }
  }
}

TEST_CASE("cuda binary (with broadcasting) and axpy match the cpu") {
  Generator gen(3);
  // {shape of a, shape of b}: equal (float32 runs four values per thread: 259 leaves a tail of 3, 6400
  // none), a row vector, a leading operand repeated, a scalar
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{7, 37}, {7, 37}}, {{64, 100}, {64, 100}}, {{129, 1000}, {1000}}, {{37}, {7, 37}}, {{1}, {129, 37}}};
  for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div}) {
    for (const auto& [sa, sb] : shapes) {
      CAPTURE(static_cast<int>(op));
      CAPTURE(shape_str(sa));
      CAPTURE(shape_str(sb));
      const Shape out_shape = numel_of(sa) >= numel_of(sb) ? sa : sb;
      const Tensor a = uniform(sa, -2.0, 2.0, gen), b = uniform(sb, 0.5, 2.0, gen);  // b away from 0 for Div
      const Results r = run_on_both({a, b}, {zeros(out_shape)},
                                    [op](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                      be.binary(op, in[0], in[1], out[0]);
                                    });
      CHECK(gap(r) <= 1e-6);  // one correctly rounded IEEE operation on both
    }
  }
  // equal sizes off a 16-byte boundary take the one-value-per-thread kernel
  const Tensor a = uniform({401}, -2.0, 2.0, gen), b = uniform({401}, 0.5, 2.0, gen);
  const Results unaligned = run_on_both({a, b}, {zeros({400})},
                                        [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                          be.binary(BinaryOp::Mul, in[0].as_strided({400}, {1}, 1),
                                                    in[1].as_strided({400}, {1}, 1), out[0]);
                                        });
  CHECK(gap(unaligned) <= 1e-6);
  const Results axpy = run_on_both({uniform({129, 1000}, -1.0, 1.0, gen)}, {uniform({129, 1000}, -1.0, 1.0, gen)},
                                   [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                     be.axpy(-0.3, in[0], out[0]);
                                   });
  CHECK(gap(axpy) <= 1e-6);  // the GPU may fuse the multiply-add: one rounding fewer
}

TEST_CASE("cuda sum_axis and sum_of_squares match the cpu") {
  Generator gen(4);
  // {outer, n, inner}: rows, a middle axis, broadcast gradients (outer 1), a full sum, a trivial axis
  const std::vector<std::array<int64_t, 3>> layouts = {
      {7, 37, 1}, {3, 129, 37}, {1, 1000, 129}, {1, 129000, 1}, {5, 1, 7}};
  for (DType dtype : {DType::F32, DType::F64}) {
    for (const auto& [outer, n, inner] : layouts) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(outer);
      CAPTURE(n);
      CAPTURE(inner);
      const Results r = run_on_both({uniform({outer, n, inner}, -1.0, 1.0, gen, dtype)}, {zeros({outer, inner}, dtype)},
                                    [&](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                      be.sum_axis(in[0], out[0], outer, n, inner);
                                    });
      CHECK(gap(r) <= 1e-5);  // both accumulate in double; the result is rounded once
    }
  }

  const std::vector<Tensor> tensors = {uniform({7, 37}, -1.0, 1.0, gen), uniform({129, 1000}, -1.0, 1.0, gen),
                                       uniform({1}, -1.0, 1.0, gen), zeros({0}), uniform({300000}, -1.0, 1.0, gen)};
  std::vector<Tensor> on_gpu;
  for (const Tensor& t : tensors) on_gpu.push_back(t.to_device(Device::CUDA));
  const double cpu_sum = backend(Device::CPU).sum_of_squares(tensors), gpu_sum = gpu().sum_of_squares(on_gpu);
  CHECK(cpu_sum > 1000.0);
  CHECK(std::fabs(gpu_sum - cpu_sum) <= 1e-12 * cpu_sum);  // double accumulation on both, different order
  CHECK(gpu().sum_of_squares(on_gpu) == gpu_sum);         // reproducible: a fixed reduction order
  CHECK(gpu().sum_of_squares({}) == 0.0);
}

TEST_CASE("cuda gemm with at most 8 rows times a transposed weight (gemm_few_rows, the decode path)") {
  Generator gen(6);
  for (int64_t m : {1, 3, 4, 5, 8}) {
    for (double beta : {0.0, 0.5}) {
      // C (m×301) = 1.5·A (m×263)·Bᵀ (+ 0.5·C), padded rows; with beta 0 the output starts as NaN,
      // which must not leak into the result
      Backend::Gemm g;
      g.trans_b = true;
      g.m = m, g.n = 301, g.k = 263, g.alpha = 1.5, g.beta = beta;
      g.lda = g.k + 2, g.ldb = g.k + 5, g.ldc = g.n + 1;
      CAPTURE(m);
      CAPTURE(beta);
      Tensor c = operand(1, m, g.ldc, gen);
      if (beta == 0.0) c = full({1, m, g.ldc}, std::nan(""));
      const Results r = run_on_both({operand(1, m, g.lda, gen), operand(1, g.n, g.ldb, gen)}, {c},
                                    [&](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                      be.gemm(g, in[0], in[1], out[0]);
                                    });
      std::vector<double> gpu_c = r.gpu[0].to_double_vector(), cpu_c = r.cpu[0].to_double_vector();
      for (int64_t i = 0; i < m; ++i) {  // the columns past n in each padded row are not outputs
        const std::vector<double> got(gpu_c.begin() + i * g.ldc, gpu_c.begin() + i * g.ldc + g.n);
        const std::vector<double> want(cpu_c.begin() + i * g.ldc, cpu_c.begin() + i * g.ldc + g.n);
        CHECK(max_scaled_error(got, want) <= 1e-4);  // fp32, sums of 263 products in another order
      }
    }
  }
}

TEST_CASE("cuda gemm matches the cpu for every transpose, batch, padding and scaling") {
  Generator gen(5);
  for (bool trans_a : {false, true}) {
    for (bool trans_b : {false, true}) {
      // batch 3 of C (7×37) = 0.5·op(A)·op(B) + 0.25·C with k = 129, every matrix with padded rows
      Backend::Gemm g;
      g.trans_a = trans_a, g.trans_b = trans_b;
      g.m = 7, g.n = 37, g.k = 129, g.alpha = 0.5, g.beta = 0.25, g.batch = 3;
      const int64_t a_rows = trans_a ? g.k : g.m, a_cols = trans_a ? g.m : g.k;
      const int64_t b_rows = trans_b ? g.n : g.k, b_cols = trans_b ? g.k : g.n;
      g.lda = a_cols + 3, g.ldb = b_cols + 1, g.ldc = g.n + 5;
      g.stride_a = a_rows * g.lda, g.stride_b = b_rows * g.ldb, g.stride_c = g.m * g.ldc;
      CAPTURE(trans_a);
      CAPTURE(trans_b);
      for (DType dtype : {DType::F32, DType::F64}) {
        CAPTURE(dtype_name(dtype));
        const Results r = run_on_both(
            {operand(3, a_rows, g.lda, gen, dtype), operand(3, b_rows, g.ldb, gen, dtype)},
            {operand(3, g.m, g.ldc, gen, dtype)},
            [&](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
              be.gemm(g, in[0], in[1], out[0]);
            });
        CHECK(gap(r) <= (dtype == DType::F32 ? 1e-4 : 1e-12));  // summation order differs over k = 129
      }
    }
  }

  // one large plain product: (129×37) · (37×1000)
  Backend::Gemm g;
  g.m = 129, g.n = 1000, g.k = 37, g.lda = 37, g.ldb = 1000, g.ldc = 1000;
  const Tensor a = uniform({129, 37}, -1.0, 1.0, gen), b = uniform({37, 1000}, -1.0, 1.0, gen);
  const auto product = [&](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    be.gemm(g, in[0], in[1], out[0]);
  };
  const Results fp32 = run_on_both({a, b}, {zeros({129, 1000})}, product);
  CHECK(gap(fp32) <= 1e-4);

  // TF32 tensor cores round the inputs to 10 mantissa bits: about 1e-3 of a dot product's size
  gpu().allow_tf32(true);
  const Results tf32 = run_on_both({a, b}, {zeros({129, 1000})}, product);
  gpu().allow_tf32(false);
  CHECK(gap(tf32) <= 1e-2);

  // bfloat16 inputs (8 mantissa bits) with float32 accumulation, against the float32 product of the
  // unrounded inputs
  const Tensor a16 = a.to_device(Device::CUDA).to_dtype(DType::BF16);
  const Tensor b16 = b.to_device(Device::CUDA).to_dtype(DType::BF16);
  Tensor c = zeros({129, 1000}, DType::F32, Device::CUDA);
  gpu().gemm(g, a16, b16, c);
  CHECK(max_scaled_error(c.to_double_vector(), fp32.cpu[0].to_double_vector()) <= 2e-2);
}

TEST_CASE("cuda softmax and log_softmax match the cpu, masked entries exactly 0") {
  Generator gen(6);
  // {shape, tq, causal}: plain rows, causal with tq < tk (a KV cache), tq = tk, and tq > tk (the first
  // rows of each block see no key at all and are all zeros)
  struct Case {
    Shape shape;
    int64_t tq;
    bool causal;
  };
  for (const Case& c : {Case{{129, 1000}, 0, false}, Case{{2, 3, 5, 9}, 5, true}, Case{{3, 37, 37}, 37, true},
                        Case{{2, 9, 5}, 9, true}, Case{{7, 1000}, 7, true}}) {
    CAPTURE(shape_str(c.shape));
    CAPTURE(c.tq);
    const Tensor x = uniform(c.shape, -4.0, 4.0, gen);
    const Results forward = run_on_both({x}, {zeros(c.shape)},
                                        [&](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                          be.softmax_forward(in[0], out[0], 0.125, c.causal, c.tq);
                                        });
    CHECK(gap(forward) <= 1e-5);
    if (c.causal) {
      const int64_t tk = c.shape.back();
      const std::vector<double> y = forward.gpu[0].to_double_vector();
      bool masked_zero = true;
      for (size_t e = 0; e < y.size(); ++e) {
        const int64_t i = static_cast<int64_t>(e) / tk % c.tq, j = static_cast<int64_t>(e) % tk;
        if (j > i + (tk - c.tq)) masked_zero = masked_zero && y[e] == 0.0;
      }
      CHECK(masked_zero);
    }
    const Results backward = run_on_both({forward.cpu[0], uniform(c.shape, -1.0, 1.0, gen)}, {zeros(c.shape)},
                                         [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                           be.softmax_backward(in[0], in[1], out[0], 0.125);
                                         });
    CHECK(gap(backward) <= 1e-5);
  }

  for (const Shape& shape : {Shape{129, 1000}, Shape{7, 37}}) {
    CAPTURE(shape_str(shape));
    const Results forward = run_on_both({uniform(shape, -4.0, 4.0, gen)}, {zeros(shape)},
                                        [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                          be.log_softmax_forward(in[0], out[0]);
                                        });
    CHECK(gap(forward) <= 1e-5);
    const Results backward = run_on_both({forward.cpu[0], uniform(shape, -1.0, 1.0, gen)}, {zeros(shape)},
                                         [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                           be.log_softmax_backward(in[0], in[1], out[0]);
                                         });
    CHECK(gap(backward) <= 1e-5);
  }
}

TEST_CASE("cuda cross_entropy matches the cpu, the mean's divisor included") {
  Generator gen(7);
  const int64_t rows = 129, vocab = 1000;
  std::vector<int32_t> ids = testing::random_token_ids(rows, vocab, gen);
  for (size_t i = 0; i < ids.size(); i += 7) ids[i] = -1;  // ignored rows
  const Tensor logits = uniform({rows, vocab}, -4.0, 4.0, gen), targets = from_ints(ids, {rows});
  const Results forward = run_on_both({logits, targets}, {zeros({rows}), zeros({rows}), zeros({})},
                                      [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                        be.cross_entropy_forward(in[0], in[1], out[0], out[1]);
                                        be.count_targets(in[1], 1000, out[2]);
                                      });
  CHECK(gap(forward, 0) <= 1e-5);  // losses
  CHECK(gap(forward, 1) <= 1e-5);  // logsumexp
  CHECK(forward.gpu[2].item() == rows - (rows + 6) / 7);  // the divisor: the targets not ignored
  CHECK(forward.cpu[2].item() == forward.gpu[2].item());
  CHECK(forward.gpu[0].to_double_vector()[0] == 0.0);  // an ignored row has loss 0

  const Results backward = run_on_both(
      {logits, targets, forward.cpu[1], uniform({rows}, 0.0, 1.0, gen)}, {zeros({rows, vocab})},
      [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
        be.cross_entropy_backward(in[0], in[1], in[2], in[3], out[0]);
      });
  CHECK(gap(backward) <= 1e-5);
  const Tensor grad_rows = uniform({rows}, 0.0, 1.0, gen);
  const Results in_place = run_on_both(  // glogits may be the logits themselves
      {targets, forward.cpu[1], grad_rows}, {logits},
      [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
        be.cross_entropy_backward(out[0], in[0], in[1], in[2], out[0]);
      });
  CHECK(gap(in_place) <= 1e-5);
  const Results into_bf16 = run_on_both(  // the operand of the head's products under mixed precision
      {logits, targets, forward.cpu[1], grad_rows}, {zeros({rows, vocab}, DType::BF16)},
      [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
        be.cross_entropy_backward(in[0], in[1], in[2], in[3], out[0]);
      });
  CHECK(into_bf16.gpu[0].dtype() == DType::BF16);
  CHECK(gap(into_bf16) <= 8e-3);  // |G| ≤ 1: a rounding either side of a tie is at most 2^-8

  // every target ignored: the divisor is 1 (so the mean is 0, not 0/0), and so it is with no rows at all
  Tensor divisor = zeros({}, DType::F32, Device::CUDA);
  gpu().count_targets(from_ints(std::vector<int32_t>(7, -1), {7}, Device::CUDA), vocab, divisor);
  CHECK(divisor.item() == 1.0);
  divisor.fill_(0.0);
  gpu().count_targets(empty({0}, DType::I32, Device::CUDA), vocab, divisor);
  CHECK(divisor.item() == 1.0);
  // more targets than the block has threads, a few ignored
  std::vector<int32_t> many(5000, 3);
  for (size_t i = 0; i < many.size(); i += 9) many[i] = -1;
  many[1] = static_cast<int32_t>(vocab);  // out of range: counts as ignored
  gpu().count_targets(from_ints(many, {5000}, Device::CUDA), vocab, divisor);
  CHECK(divisor.item() == 5000.0 - 557.0);
}

TEST_CASE("cuda cross_entropy's one-pass logsumexp over a GPT-2-sized vocabulary, the max rising at every step") {
  // rows: logits rising along the row (the running max changes at every value), falling, a wide random
  // spread, and all equal
  const int64_t vocab = 50257;
  std::vector<double> values;
  Generator gen(8);
  for (int64_t j = 0; j < vocab; ++j) values.push_back(-30.0 + 60.0 * j / vocab);
  for (int64_t j = 0; j < vocab; ++j) values.push_back(30.0 - 60.0 * j / vocab);
  for (int64_t j = 0; j < vocab; ++j) values.push_back(-40.0 + 80.0 * gen.uniform());
  for (int64_t j = 0; j < vocab; ++j) values.push_back(1.5);
  const Tensor logits = from_vector(values, {4, vocab}, DType::F32), targets = from_ints({vocab - 1, 0, 7, 3}, {4});
  const Results forward = run_on_both({logits, targets}, {zeros({4}), zeros({4})},
                                      [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                        be.cross_entropy_forward(in[0], in[1], out[0], out[1]);
                                      });
  CHECK(gap(forward, 0) <= 1e-5);  // losses
  CHECK(gap(forward, 1) <= 1e-5);  // logsumexp
}

TEST_CASE("cuda embedding matches the cpu, repeated ids accumulating") {
  Generator gen(8);
  const int64_t vocab = 1000, dim = 37, n = 129;
  const Tensor weight = uniform({vocab, dim}, -1.0, 1.0, gen);
  const Tensor ids = from_ints(testing::random_token_ids(n, 50, gen), {n});  // 129 draws from 50 ids: many repeats
  const Results forward = run_on_both({weight, ids}, {zeros({n, dim})},
                                      [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                        be.embedding_forward(in[0], in[1], out[0]);
                                      });
  CHECK(gap(forward) == 0.0);  // a copy

  // gweight starts non-zero: the kernel adds into it
  const Tensor gout = uniform({n, dim}, -1.0, 1.0, gen), gweight = uniform({vocab, dim}, -1.0, 1.0, gen);
  const Results backward = run_on_both({ids, gout}, {gweight},
                                       [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                         be.embedding_backward(in[0], in[1], out[0]);
                                       });
  CHECK(gap(backward) <= 1e-5);  // atomics sum repeated rows in another order
}

TEST_CASE("cuda rms_norm matches the cpu") {
  Generator gen(9);
  const double eps = 1.1920928955078125e-07;  // float32 machine epsilon (spec)
  for (const Shape& shape : {Shape{129, 1000}, Shape{7, 37}, Shape{3, 5, 768}}) {
    CAPTURE(shape_str(shape));
    const int64_t rows = numel_of(shape) / shape.back();
    const Tensor x = uniform(shape, -2.0, 2.0, gen);
    const Results forward = run_on_both({x}, {zeros(shape), zeros({rows})},
                                        [&](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                          be.rms_norm_forward(in[0], out[0], out[1], eps);
                                        });
    CHECK(gap(forward, 0) <= 1e-5);  // fp32 accumulation on the GPU, double on the CPU
    CHECK(gap(forward, 1) <= 1e-5);
    const Results backward = run_on_both({x, forward.cpu[1], uniform(shape, -1.0, 1.0, gen)}, {zeros(shape)},
                                         [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                           be.rms_norm_backward(in[0], in[1], in[2], out[0]);
                                         });
    CHECK(gap(backward) <= 1e-5);
  }
}

TEST_CASE("cuda rms_norm and swiglu write bfloat16 from float32 as the cpu does") {
  Generator gen(19);
  const double eps = 1.1920928955078125e-07;
  // {3, 5, 768} and {64, 100} take the four-value paths, the odd sizes one value at a time
  for (const Shape& shape : {Shape{129, 1001}, Shape{7, 37}, Shape{3, 5, 768}, Shape{64, 100}}) {
    CAPTURE(shape_str(shape));
    const int64_t rows = numel_of(shape) / shape.back();
    const Tensor x = uniform(shape, -2.0, 2.0, gen), up = uniform(shape, -2.0, 2.0, gen);
    const Results norm = run_on_both({x}, {zeros(shape, DType::BF16), zeros({rows})},
                                     [&](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                       be.rms_norm_forward(in[0], out[0], out[1], eps);
                                     });
    const Results gated = run_on_both({x, up}, {zeros(shape, DType::BF16)},
                                      [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                        be.swiglu_forward(in[0], in[1], out[0]);
                                      });
    // one bfloat16 rounding of values that agree to ~1e-6 may fall either side of a tie: 2^-8 relative
    CHECK(gap(norm, 0) <= 8e-3);
    CHECK(gap(norm, 1) <= 1e-5);
    CHECK(gap(gated) <= 8e-3);
  }
}

TEST_CASE("cuda rope matches the cpu and its inverse undoes it") {
  Generator gen(10);
  // {P, inner, dh}: dh = 38 is not a power of two; positions reach 1100 where angle precision matters
  for (const auto& [P, inner, dh] : std::vector<std::array<int64_t, 3>>{{129, 3, 38}, {7, 1, 64}, {33, 6, 64}}) {
    CAPTURE(P);
    CAPTURE(inner);
    CAPTURE(dh);
    const Tensor x = uniform({P, inner, dh}, -1.0, 1.0, gen);
    const Tensor positions = from_ints(testing::random_token_ids(P, 1100, gen), {P});
    for (bool inverse : {false, true}) {
      CAPTURE(inverse);
      const Results r = run_on_both({x, positions}, {zeros({P, inner, dh})},
                                    [&](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                      be.rope(in[0], in[1], out[0], inner, inverse);
                                    });
      // the same float32 angles (frequencies from the host's powf); sincosf vs glibc's sinf/cosf
      // differ by an ulp or two
      CHECK(gap(r) <= 1e-5);
    }
    const Tensor xg = x.to_device(Device::CUDA), pg = positions.to_device(Device::CUDA);
    Tensor rotated = empty({P, inner, dh}, DType::F32, Device::CUDA);
    Tensor back = empty({P, inner, dh}, DType::F32, Device::CUDA);
    gpu().rope(xg, pg, rotated, inner, false);
    gpu().rope(rotated, pg, back, inner, true);
    CHECK(max_scaled_error(back.to_double_vector(), x.to_double_vector()) <= 5e-6);  // a few float32 roundings
  }
}

TEST_CASE("cuda swiglu matches the cpu, forward and backward") {
  Generator gen(12);
  // 6400 values run four per thread; the odd sizes one per thread
  for (const Shape& shape : {Shape{129, 1001}, Shape{7, 37}, Shape{64, 100}}) {
    CAPTURE(shape_str(shape));
    for (DType dtype : {DType::F32, DType::F64}) {
      CAPTURE(dtype_name(dtype));
      const Tensor gate = uniform(shape, -6.0, 6.0, gen, dtype), up = uniform(shape, -2.0, 2.0, gen, dtype);
      const Tensor gout = uniform(shape, -1.0, 1.0, gen, dtype);
      const Results forward = run_on_both({gate, up}, {zeros(shape, dtype)},
                                          [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                            be.swiglu_forward(in[0], in[1], out[0]);
                                          });
      const Results backward = run_on_both({gate, up, gout}, {zeros(shape, dtype), zeros(shape, dtype)},
                                           [](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                             be.swiglu_backward(in[0], in[1], in[2], out[0], out[1]);
                                           });
      // the same expression on both; exp differs by an ulp or two between CUDA and glibc
      const double tol = dtype == DType::F32 ? 1e-5 : 1e-12;
      CHECK(gap(forward) <= tol);
      CHECK(gap(backward, 0) <= tol);
      CHECK(gap(backward, 1) <= tol);
    }
  }
}

TEST_CASE("cuda tpa_product matches the cpu, forward and backward") {
  Generator gen(13);
  // {tokens, H, R, dh}: the paper's small T6 (keys/values and queries), awkward sizes, rank 1, and
  // a shape whose backward needs more than the default 48 KiB of shared memory (float64)
  for (const auto& [N, H, R, dh] : std::vector<std::array<int64_t, 4>>{
           {1037, 34, 2, 64}, {1037, 34, 6, 64}, {33, 5, 3, 37}, {7, 3, 1, 10}, {9, 64, 2, 128}}) {
    CAPTURE(N);
    CAPTURE(H);
    CAPTURE(R);
    CAPTURE(dh);
    Backend::TPAProduct p;
    p.tokens = N, p.heads = H, p.rank = R, p.head_dim = dh, p.scale = 1.0 / static_cast<double>(R);
    for (DType dtype : {DType::F32, DType::F64}) {
      CAPTURE(dtype_name(dtype));
      const Tensor a = uniform({N, H, R}, -1.0, 1.0, gen, dtype), b = uniform({N, R, dh}, -1.0, 1.0, gen, dtype);
      const Tensor gout = uniform({N, H, dh}, -1.0, 1.0, gen, dtype);
      const Results forward = run_on_both({a, b}, {zeros({N, H, dh}, dtype)},
                                          [&](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                            be.tpa_product_forward(p, in[0], in[1], out[0]);
                                          });
      const Results backward = run_on_both({a, b, gout}, {zeros({N, H, R}, dtype), zeros({N, R, dh}, dtype)},
                                           [&](Backend& be, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
                                             be.tpa_product_backward(p, in[0], in[1], in[2], out[0], out[1]);
                                           });
      // sums of R (forward), dh or H (backward) products in a different order: matmul-like tolerances
      const double tol = dtype == DType::F32 ? 1e-5 : 1e-13;
      CHECK(gap(forward) <= tol);
      CHECK(gap(backward, 0) <= tol);
      CHECK(gap(backward, 1) <= tol);
    }
  }
}

TEST_CASE("cuda adamw_step matches the cpu over many slots in one launch") {
  Generator gen(11);
  // sizes: tiny tensors, one spanning several 4096-element chunks, an empty one
  const std::vector<Shape> shapes = {{7}, {37, 129}, {1000}, {1}, {129, 1000}, {0}, {3, 5}};
  std::vector<Tensor> state;  // param, grad, exp_avg, exp_avg_sq per slot
  for (const Shape& s : shapes) {
    state.push_back(uniform(s, -1.0, 1.0, gen));
    state.push_back(uniform(s, -1.0, 1.0, gen));
    state.push_back(uniform(s, -0.1, 0.1, gen));
    state.push_back(uniform(s, 0.0, 0.01, gen));
  }
  const Results r = run_on_both({}, state, [&](Backend& be, const std::vector<Tensor>&, std::vector<Tensor>& out) {
    std::vector<AdamWSlot> slots;
    for (size_t i = 0; i < out.size(); i += 4) slots.push_back({out[i], out[i + 1], out[i + 2], out[i + 3]});
    for (int64_t step = 1; step <= 3; ++step) {
      const AdamWHyper h{6e-4, 0.9, 0.95, 1e-8, 0.1, step, 0.5};
      be.adamw_step(slots, h);
    }
  });
  for (size_t i = 0; i < state.size(); ++i) {
    if (i % 4 == 1) continue;  // the gradient is only read
    CAPTURE(i);
    CHECK(gap(r, i) <= 1e-6);  // the same float32 arithmetic on both sides (core/adamw_constants.h)
  }
}

}  // TEST_SUITE
