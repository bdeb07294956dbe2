// The CPU backend, kernel by kernel, against naive loops written here in double precision: random
// inputs of awkward sizes (7×13, not multiples of a vector width), plus sizes past the OpenMP
// thresholds so the parallel paths run too. Errors are max |got − ref| / max(1, |ref|), within 1e-6
// for float32 and 1e-12 for float64 unless a check says otherwise.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/cpu/threads.h"
#include "core/random.h"
#include "tests/test_helpers.h"

using namespace t6;
using t6::testing::check_close;
using t6::testing::max_scaled_error;

namespace {

Backend& cpu() { return backend(Device::CPU); }

const DType kFloatTypes[] = {DType::F32, DType::F64};

double tolerance(DType dtype) { return dtype == DType::F32 ? 1e-6 : 1e-12; }

std::vector<double> values(const Tensor& t) { return t.to_double_vector(); }

// Checks that `fn` throws t6::Error with a message containing every one of `parts`.
template <class F>
void check_error_mentions(F fn, std::initializer_list<const char*> parts) {
  try {
    fn();
    FAIL("expected a t6::Error");
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const char* part : parts) {
      INFO("message: ", message, "; expected to mention: ", part);
      CHECK(message.find(part) != std::string::npos);
    }
  }
}

double sigmoid_ref(double v) { return v >= 0 ? 1.0 / (1.0 + std::exp(-v)) : std::exp(v) / (1.0 + std::exp(v)); }

}  // namespace

TEST_SUITE("cpu backend") {

TEST_CASE("cpu memory is 64-byte aligned, zero-byte allocations work, and use is counted") {
  Backend& b = cpu();
  const Backend::MemoryStats before = b.memory_stats();
  void* empty_block = b.allocate(0);
  void* block = b.allocate(1000);
  CHECK(empty_block != nullptr);
  CHECK(reinterpret_cast<uintptr_t>(empty_block) % 64 == 0);
  CHECK(reinterpret_cast<uintptr_t>(block) % 64 == 0);
  CHECK(b.memory_stats().current_bytes == before.current_bytes + 1000);
  CHECK(b.memory_stats().peak_bytes >= before.current_bytes + 1000);
  std::vector<char> host(1000, 7), back(1000, 0);
  b.copy_from_host(block, host.data(), 1000);
  b.copy_to_host(back.data(), block, 1000);
  CHECK(back == host);
  b.synchronize();
  b.deallocate(block, 1000);
  b.deallocate(empty_block, 0);
  CHECK(b.memory_stats().current_bytes == before.current_bytes);
}

TEST_CASE("cpu describe, blas_description and thread settings") {
  CHECK(cpu().describe().rfind("cpu (OpenBLAS ", 0) == 0);
  CHECK(cpu().describe().find(" thread") != std::string::npos);
  CHECK(blas_description().find("OpenBLAS") != std::string::npos);

  const int original = cpu_threads();
  CHECK(original >= 1);
  set_cpu_threads(1);
  CHECK(cpu_threads() == 1);
  CHECK(cpu().describe().find(", 1 thread)") != std::string::npos);

  const char* saved = std::getenv("T6_NUM_THREADS");
  const std::string saved_value = saved ? saved : "";
  setenv("T6_NUM_THREADS", "3", 1);
  set_cpu_threads(0);
  CHECK(cpu_threads() == 3);
  setenv("T6_NUM_THREADS", "many", 1);
  check_error_mentions([] { set_cpu_threads(0); }, {"T6_NUM_THREADS", "many"});
  if (saved) {
    setenv("T6_NUM_THREADS", saved_value.c_str(), 1);
  } else {
    unsetenv("T6_NUM_THREADS");
  }
  check_error_mentions([] { set_cpu_threads(-2); }, {"set_cpu_threads", "-2"});
  set_cpu_threads(original);
  CHECK(cpu_threads() == original);
}

TEST_CASE("cpu registry: CUDA errors are clear and only CUDA registers a factory") {
  CHECK(device_available(Device::CPU));
  CHECK(&backend(Device::CPU) == &backend(Device::CPU));
  CHECK(backend(Device::CPU).device() == Device::CPU);
  if (!device_available(Device::CUDA)) {
    try {
      backend(Device::CUDA);
      FAIL("backend(CUDA) should throw without a GPU");
    } catch (const Error& e) {
      const std::string message = e.what();
      CHECK((message == "this t6 was built without CUDA (configure with -DT6_CUDA=ON)" ||
             message == "no CUDA GPU found"));
    }
  }
  BackendFactory fake{[] { return true; }, [](int) { return &backend(Device::CPU); }};
  check_error_mentions([&] { register_backend_factory(Device::CPU, fake); }, {"built in"});
  check_error_mentions([] { register_backend_factory(Device::CUDA, BackendFactory{nullptr, nullptr}); },
                       {"available()"});
}

TEST_CASE("cpu fill and cast cover every dtype, rounding and saturating as documented") {
  for (DType dtype : {DType::F32, DType::F64, DType::I32, DType::BF16}) {
    CAPTURE(dtype_name(dtype));
    Tensor t = empty({7, 13}, dtype);
    cpu().fill(t, 2.5);
    const double expected = dtype == DType::I32 ? 2.0 : 2.5;
    for (double v : values(t)) CHECK(v == expected);
    Tensor big = empty({70000}, dtype);  // past the parallel threshold
    cpu().fill(big, -3.75);
    const std::vector<double> got = values(big);
    CHECK(got.front() == (dtype == DType::I32 ? -3.0 : -3.75));
    CHECK(got.back() == got.front());
  }

  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor src = from_vector({1.9, -1.9, 3e9, -3e9, nan, 0.1, 1.0 + 1.0 / 256, 65504.5}, {8}, DType::F64);
  Tensor ints = empty({8}, DType::I32);
  cpu().cast(src, ints);
  CHECK(ints.to_vector<int32_t>() ==
        std::vector<int32_t>{1, -1, INT32_MAX, INT32_MIN, 0, 0, 1, 65504});  // truncates, saturates, NaN → 0

  Tensor halves = empty({8}, DType::BF16);
  cpu().cast(src, halves);
  const std::vector<double> h = values(halves);
  CHECK(h[0] == 1.8984375);  // nearest bfloat16 to 1.9
  CHECK(h[5] == bf16_to_float(float_to_bf16(0.1f)));
  CHECK(h[6] == 1.0);  // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties to even
  CHECK(std::isnan(h[4]));

  Tensor floats = empty({8}, DType::F32);
  cpu().cast(halves, floats);
  CHECK(values(floats)[0] == 1.8984375);
  Tensor back = empty({8}, DType::F64);
  cpu().cast(ints, back);
  CHECK(values(back)[2] == 2147483647.0);

  Generator gen(1);
  Tensor x64 = uniform({70001}, -5, 5, gen, DType::F64);
  Tensor x32 = empty({70001}, DType::F32);
  cpu().cast(x64, x32);
  std::vector<double> rounded;
  for (double v : values(x64)) rounded.push_back(static_cast<float>(v));
  CHECK(values(x32) == rounded);
}

TEST_CASE("cpu strided_copy follows any strides on both sides") {
  Generator gen(2);
  for (DType dtype : {DType::F32, DType::F64, DType::I32, DType::BF16}) {
    CAPTURE(dtype_name(dtype));
    const Shape shape{3, 4, 5, 6};
    Tensor base = dtype == DType::I32 || dtype == DType::BF16
                      ? uniform(shape, -100, 100, gen, DType::F64).to_dtype(dtype)
                      : uniform(shape, -1, 1, gen, dtype);
    const std::vector<double> v = values(base);
    // the permuted view (0, 2, 1, 3): out[a][c][b][d] = base[a][b][c][d]
    Tensor view = base.as_strided({3, 5, 4, 6}, {120, 6, 30, 1}, 0);
    Tensor out = empty({3, 5, 4, 6}, dtype);
    cpu().strided_copy(view, out);
    std::vector<double> expected;
    for (int a = 0; a < 3; ++a)
      for (int c = 0; c < 5; ++c)
        for (int b = 0; b < 4; ++b)
          for (int d = 0; d < 6; ++d) expected.push_back(v[((a * 4 + b) * 5 + c) * 6 + d]);
    CHECK(values(out) == expected);

    // the last axis strided too: the transpose (3, 2, 1, 0)
    Tensor transposed = base.as_strided({6, 5, 4, 3}, {1, 6, 30, 120}, 0);
    Tensor out_t = empty({6, 5, 4, 3}, dtype);
    cpu().strided_copy(transposed, out_t);
    expected.clear();
    for (int d = 0; d < 6; ++d)
      for (int c = 0; c < 5; ++c)
        for (int b = 0; b < 4; ++b)
          for (int a = 0; a < 3; ++a) expected.push_back(v[((a * 4 + b) * 5 + c) * 6 + d]);
    CHECK(values(out_t) == expected);

    // contiguous into a strided window of a larger tensor (every other row, from offset 7)
    Tensor dst = zeros({20, 13}, dtype);
    Tensor window = dst.as_strided({7, 5}, {26, 1}, 7);
    Tensor piece = base.as_strided({7, 5}, {5, 1}, 0);
    cpu().strided_copy(piece, window);
    const std::vector<double> d = values(dst);
    for (int r = 0; r < 7; ++r)
      for (int c = 0; c < 5; ++c) CHECK(d[7 + r * 26 + c] == v[r * 5 + c]);
    CHECK(d[6] == 0.0);
    CHECK(d[13] == 0.0);

    // size-1 axes carry arbitrary strides and must not stop the others from being copied
    Tensor with_ones = base.as_strided({3, 1, 4, 1, 6}, {120, 7, 30, 1000, 1}, 5);
    Tensor out_ones = empty({3, 1, 4, 1, 6}, dtype);
    cpu().strided_copy(with_ones, out_ones);
    expected.clear();
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 4; ++b)
        for (int e = 0; e < 6; ++e) expected.push_back(v[5 + a * 120 + b * 30 + e]);
    CHECK(values(out_ones) == expected);
  }

  // big enough for the parallel paths: a permuted copy with short contiguous rows, and one element at a time
  const Shape shape{16, 128, 8, 32};  // [B, T, H, dh] viewed as [B, H, T, dh]
  Tensor x = uniform(shape, -1, 1, gen, DType::F32);
  Tensor bhtd = empty({16, 8, 128, 32});
  cpu().strided_copy(x.as_strided({16, 8, 128, 32}, {128 * 8 * 32, 32, 8 * 32, 1}, 0), bhtd);
  const std::vector<double> xv = values(x), yv = values(bhtd);
  bool all_equal = true;
  for (int64_t b = 0; b < 16; ++b)
    for (int64_t h = 0; h < 8; ++h)
      for (int64_t t = 0; t < 128; ++t)
        for (int64_t j = 0; j < 32; ++j)
          all_equal &= yv[((b * 8 + h) * 128 + t) * 32 + j] == xv[((b * 128 + t) * 8 + h) * 32 + j];
  CHECK(all_equal);
  Tensor wide = uniform({300, 200}, -1, 1, gen, DType::F64);
  Tensor wide_t = empty({200, 300}, DType::F64);
  cpu().strided_copy(wide.as_strided({200, 300}, {1, 200}, 0), wide_t);
  const std::vector<double> w = values(wide), wt = values(wide_t);
  all_equal = true;
  for (int i = 0; i < 300; ++i)
    for (int j = 0; j < 200; ++j) all_equal &= wt[j * 300 + i] == w[i * 200 + j];
  CHECK(all_equal);

  // a scalar and an empty tensor
  Tensor one = from_vector({4.0}, {}, DType::F32), one_out = empty({}, DType::F32);
  cpu().strided_copy(one, one_out);
  CHECK(one_out.item() == 4.0);
  Tensor none = empty({0, 5}), none_out = empty({0, 5});
  cpu().strided_copy(none, none_out);
  CHECK(none_out.numel() == 0);
}

TEST_CASE("cpu unary and unary_backward match their formulas") {
  Generator gen(3);
  const UnaryOp ops[] = {UnaryOp::Neg,     UnaryOp::Exp,  UnaryOp::Log,   UnaryOp::Sqrt,     UnaryOp::Rsqrt,
                         UnaryOp::Sigmoid, UnaryOp::Silu, UnaryOp::Scale, UnaryOp::AddScalar};
  const double alpha = -0.75;
  for (DType dtype : kFloatTypes) {
    for (int64_t n : {int64_t{7 * 13}, int64_t{40000}}) {
      for (UnaryOp op : ops) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(n);
        CAPTURE(static_cast<int>(op));
        const bool positive = op == UnaryOp::Log || op == UnaryOp::Sqrt || op == UnaryOp::Rsqrt;
        Tensor x = uniform({n}, positive ? 0.1 : -4.0, 4.0, gen, dtype);
        Tensor y = empty({n}, dtype), gy = uniform({n}, -1, 1, gen, dtype), gx = empty({n}, dtype);
        cpu().unary(op, x, y, alpha);
        // unused operands are passed undefined: the kernel must not touch them
        const bool needs_x = op == UnaryOp::Log || op == UnaryOp::Silu;
        const bool needs_y = op == UnaryOp::Exp || op == UnaryOp::Sqrt || op == UnaryOp::Rsqrt || op == UnaryOp::Sigmoid;
        cpu().unary_backward(op, needs_x ? x : Tensor(), needs_y ? y : Tensor(), gy, gx, alpha);
        const std::vector<double> xv = values(x), yv = values(y), gv = values(gy);
        std::vector<double> fwd, bwd;
        for (size_t i = 0; i < xv.size(); ++i) {
          const double v = xv[i], g = gv[i], s = sigmoid_ref(v);
          switch (op) {
            case UnaryOp::Neg: fwd.push_back(-v), bwd.push_back(-g); break;
            case UnaryOp::Exp: fwd.push_back(std::exp(v)), bwd.push_back(g * yv[i]); break;
            case UnaryOp::Log: fwd.push_back(std::log(v)), bwd.push_back(g / v); break;
            case UnaryOp::Sqrt: fwd.push_back(std::sqrt(v)), bwd.push_back(g / (2 * yv[i])); break;
            case UnaryOp::Rsqrt: fwd.push_back(1 / std::sqrt(v)), bwd.push_back(-g * std::pow(yv[i], 3) / 2); break;
            case UnaryOp::Sigmoid: fwd.push_back(s), bwd.push_back(g * yv[i] * (1 - yv[i])); break;
            case UnaryOp::Silu: fwd.push_back(v * s), bwd.push_back(g * (s + v * s * (1 - s))); break;
            case UnaryOp::Scale: fwd.push_back(alpha * v), bwd.push_back(alpha * g); break;
            case UnaryOp::AddScalar: fwd.push_back(v + alpha), bwd.push_back(g); break;
          }
        }
        check_close(y, fwd, tolerance(dtype));
        check_close(gx, bwd, tolerance(dtype));
      }
    }
    // sigmoid and silu stay finite and exact at the extremes
    Tensor wild = from_vector({-1000, -100, -88.5, 0, 88.5, 100, 1000}, {7}, dtype);
    Tensor s = empty({7}, dtype), silu = empty({7}, dtype), gsilu = empty({7}, dtype);
    cpu().unary(UnaryOp::Sigmoid, wild, s, 0);
    cpu().unary(UnaryOp::Silu, wild, silu, 0);
    cpu().unary_backward(UnaryOp::Silu, wild, Tensor(), ones({7}, dtype), gsilu, 0);
    const std::vector<double> sv = values(s), lv = values(silu), gl = values(gsilu);
    for (int i = 0; i < 7; ++i) {
      CHECK(std::isfinite(sv[i]));
      CHECK(std::isfinite(lv[i]));
      CHECK(std::isfinite(gl[i]));
    }
    CHECK(sv[0] == 0.0);
    CHECK(sv[6] == 1.0);
    CHECK(lv[0] == 0.0);
    CHECK(lv[6] == 1000.0);
    CHECK(gl[0] == 0.0);
    CHECK(gl[6] == 1.0);
  }
  // in place, as Tensor::scale_ runs it
  Tensor t = from_vector({1, 2, 3}, {3}, DType::F32);
  cpu().unary(UnaryOp::Scale, t, t, 2.0);
  CHECK(values(t) == std::vector<double>{2, 4, 6});
  Tensor ints = empty({3}, DType::I32);
  check_error_mentions([&] { cpu().unary(UnaryOp::Exp, ints, ints, 0); }, {"unary", "int32"});
}

TEST_CASE("cpu binary broadcasts trailing blocks and scalars; axpy") {
  Generator gen(4);
  struct Case {
    Shape out, a, b;
  };
  const Case cases[] = {
      {{7, 13}, {7, 13}, {7, 13}}, {{7, 13}, {13}, {7, 13}},   {{7, 13}, {7, 13}, {13}},
      {{7, 13}, {1}, {7, 13}},     {{7, 13}, {7, 13}, {1}},    {{4, 3, 5}, {3, 5}, {5}},
      {{4, 3, 5}, {5}, {3, 5}},    {{5}, {1}, {1}},            {{300, 200}, {200}, {300, 200}},
      {{300, 200}, {1}, {300, 200}}, {{300, 200}, {300, 200}, {300, 200}},
  };
  const BinaryOp ops[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div};
  for (DType dtype : kFloatTypes) {
    for (const Case& c : cases) {
      for (BinaryOp op : ops) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(shape_str(c.out));
        CAPTURE(shape_str(c.a));
        CAPTURE(shape_str(c.b));
        CAPTURE(static_cast<int>(op));
        Tensor a = uniform(c.a, -2, 2, gen, dtype);
        Tensor b = uniform(c.b, 0.5, 2, gen, dtype);
        Tensor out = empty(c.out, dtype);
        cpu().binary(op, a, b, out);
        const std::vector<double> av = values(a), bv = values(b);
        std::vector<double> expected;
        for (int64_t i = 0; i < out.numel(); ++i) {
          const double u = av[i % av.size()], v = bv[i % bv.size()];
          expected.push_back(op == BinaryOp::Add ? u + v : op == BinaryOp::Sub ? u - v : op == BinaryOp::Mul ? u * v : u / v);
        }
        check_close(out, expected, tolerance(dtype));
      }
    }
    Tensor x = uniform({40000}, -1, 1, gen, dtype), y = uniform({40000}, -1, 1, gen, dtype);
    std::vector<double> expected = values(y);
    const std::vector<double> xv = values(x);
    for (size_t i = 0; i < expected.size(); ++i) expected[i] += 0.3 * xv[i];
    cpu().axpy(0.3, x, y);
    check_close(y, expected, tolerance(dtype));
  }
  Tensor out = empty({6}), a = ones({2}), b = ones({3});
  check_error_mentions([&] { cpu().binary(BinaryOp::Add, a, b, out); }, {"binary", "broadcast"});
}

TEST_CASE("cpu sum_axis over [outer, n, inner] and sum_of_squares in double") {
  Generator gen(5);
  struct Case {
    int64_t outer, n, inner;
  };
  const Case cases[] = {{3, 7, 13}, {1, 7, 13}, {5, 13, 1}, {1, 91, 1}, {1, 2048, 40}, {1, 100000, 1},
                        {200, 300, 1}, {3, 0, 4}};
  for (DType dtype : kFloatTypes) {
    for (const Case& c : cases) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(c.outer);
      CAPTURE(c.n);
      CAPTURE(c.inner);
      Tensor x = uniform({c.outer, c.n, c.inner}, -1, 1, gen, dtype);
      Tensor y = empty({c.outer, c.inner}, dtype);
      cpu().sum_axis(x, y, c.outer, c.n, c.inner);
      const std::vector<double> xv = values(x);
      std::vector<double> expected(static_cast<size_t>(c.outer * c.inner), 0.0);
      for (int64_t o = 0; o < c.outer; ++o)
        for (int64_t r = 0; r < c.n; ++r)
          for (int64_t i = 0; i < c.inner; ++i) expected[o * c.inner + i] += xv[(o * c.n + r) * c.inner + i];
      check_close(y, expected, tolerance(dtype));
    }
  }
  std::vector<Tensor> tensors = {uniform({7, 13}, -1, 1, gen, DType::F32), uniform({100000}, -1, 1, gen, DType::F32),
                                 uniform({5}, -3, 3, gen, DType::F64)};
  double expected = 0.0;
  for (const Tensor& t : tensors)
    for (double v : values(t)) expected += v * v;
  CHECK(std::fabs(cpu().sum_of_squares(tensors) - expected) <= 1e-12 * expected);
}

TEST_CASE("cpu gemm: every transpose, batches, padded leading dimensions, both code paths") {
  Generator gen(6);
  struct Case {
    int64_t batch, m, n, k;
  };
  // tiny (the loop kernel when op(B) = B), medium and split-across-threads sizes (BLAS), and k = 0 (C = beta·C)
  const Case cases[] = {{3, 7, 13, 5}, {300, 8, 32, 6}, {2, 37, 29, 19}, {1, 300, 70, 50}, {1, 3, 500, 40}, {5, 1, 1, 1}, {2, 4, 5, 0}};
  for (DType dtype : kFloatTypes) {
    for (const Case& c : cases) {
      for (int flags = 0; flags < 4; ++flags) {
        const bool ta = flags & 1, tb = flags & 2;
        CAPTURE(dtype_name(dtype));
        CAPTURE(c.batch);
        CAPTURE(c.m);
        CAPTURE(c.n);
        CAPTURE(c.k);
        CAPTURE(ta);
        CAPTURE(tb);
        Backend::Gemm g;
        g.trans_a = ta, g.trans_b = tb;
        g.m = c.m, g.n = c.n, g.k = c.k;
        g.alpha = 0.5, g.beta = 0.25;
        // stored A is (ta ? k×m : m×k), stored B is (tb ? n×k : k×n); pad every row by 3 and every matrix by 11
        const int64_t a_rows = ta ? c.k : c.m, a_cols = ta ? c.m : c.k;
        const int64_t b_rows = tb ? c.n : c.k, b_cols = tb ? c.k : c.n;
        g.lda = a_cols + 3, g.ldb = b_cols + 3, g.ldc = c.n + 3;
        g.stride_a = a_rows * g.lda + 11, g.stride_b = b_rows * g.ldb + 11, g.stride_c = c.m * g.ldc + 11;
        g.batch = c.batch;
        Tensor a = uniform({c.batch * g.stride_a}, -1, 1, gen, dtype);
        Tensor b = uniform({c.batch * g.stride_b}, -1, 1, gen, dtype);
        Tensor cc = uniform({c.batch * g.stride_c}, -1, 1, gen, dtype);
        const std::vector<double> av = values(a), bv = values(b);
        std::vector<double> expected = values(cc);
        for (int64_t q = 0; q < c.batch; ++q)
          for (int64_t i = 0; i < c.m; ++i)
            for (int64_t j = 0; j < c.n; ++j) {
              double sum = 0.0;
              for (int64_t p = 0; p < c.k; ++p) {
                const double x = av[q * g.stride_a + (ta ? p * g.lda + i : i * g.lda + p)];
                const double y = bv[q * g.stride_b + (tb ? j * g.ldb + p : p * g.ldb + j)];
                sum += x * y;
              }
              double& out = expected[q * g.stride_c + i * g.ldc + j];
              out = 0.5 * sum + 0.25 * out;
            }
        cpu().gemm(g, a, b, cc);
        // float32 sums of k products round k times: allow for k
        check_close(cc, expected, dtype == DType::F32 ? 1e-6 * std::max<double>(1.0, std::sqrt(c.k)) : 1e-12);
      }
    }
  }
}

TEST_CASE("cpu gemm: beta = 0 ignores C, the tiny-matrix path and BLAS agree, bad calls throw") {
  Generator gen(7);
  for (DType dtype : kFloatTypes) {
    CAPTURE(dtype_name(dtype));
    // TPA factor products: 2048 × [8×6]·[6×32]; B given plainly (loop kernel) and transposed (BLAS)
    const int64_t batch = 2048, m = 8, n = 32, k = 6;
    Tensor a = uniform({batch, m, k}, -1, 1, gen, dtype);
    Tensor b = uniform({batch, k, n}, -1, 1, gen, dtype);
    Tensor bt = empty({batch, n, k}, dtype);
    cpu().strided_copy(b.as_strided({batch, n, k}, {k * n, 1, n}, 0), bt);
    Backend::Gemm g;
    g.m = m, g.n = n, g.k = k, g.lda = k, g.ldb = n, g.ldc = n;
    g.stride_a = m * k, g.stride_b = k * n, g.stride_c = m * n, g.batch = batch;
    Tensor c_loop = full({batch, m, n}, std::nan(""), dtype);  // beta = 0: NaN in C must not leak through
    cpu().gemm(g, a, b, c_loop);
    Backend::Gemm gt = g;
    gt.trans_b = true, gt.ldb = k;
    Tensor c_blas = full({batch, m, n}, std::nan(""), dtype);
    cpu().gemm(gt, a, bt, c_blas);
    const std::vector<double> av = values(a), bv = values(b);
    std::vector<double> expected;
    for (int64_t q = 0; q < batch; ++q)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double sum = 0.0;
          for (int64_t p = 0; p < k; ++p) sum += av[(q * m + i) * k + p] * bv[(q * k + p) * n + j];
          expected.push_back(sum);
        }
    check_close(c_loop, expected, tolerance(dtype) * 3);
    check_close(c_blas, expected, tolerance(dtype) * 3);
  }

  Backend::Gemm g;
  g.m = 2, g.n = 2, g.k = 2, g.lda = 2, g.ldb = 2, g.ldc = 2;
  Tensor a = ones({2, 2}), c = empty({2, 2});
  Tensor a16 = ones({2, 2}).to_dtype(DType::BF16);
  check_error_mentions([&] { cpu().gemm(g, a16, a16, c); }, {"gemm", "bfloat16"});
  Tensor a64 = ones({2, 2}, DType::F64);
  check_error_mentions([&] { cpu().gemm(g, a64, a, c); }, {"gemm", "float64"});
  Backend::Gemm narrow = g;
  narrow.lda = 1;
  check_error_mentions([&] { cpu().gemm(narrow, a, a, c); }, {"gemm", "leading dimension"});
  Backend::Gemm overrun = g;
  overrun.batch = 2, overrun.stride_a = 4;
  check_error_mentions([&] { cpu().gemm(overrun, a, a, c); }, {"gemm", "too small"});
}

TEST_CASE("cpu softmax: plain, scaled, causal with tq < tk, and its backward") {
  Generator gen(8);
  for (DType dtype : kFloatTypes) {
    struct Case {
      Shape shape;
      bool causal;
      double scale;
    };
    const Case cases[] = {{{7, 13}, false, 0.7}, {{2, 3, 5}, true, 1.0}, {{2, 4, 4}, true, 0.5},
                          {{16, 8, 20, 20}, true, 0.18}, {{3, 11}, false, 40.0}};
    for (const Case& c : cases) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(shape_str(c.shape));
      Tensor x = uniform(c.shape, -3, 3, gen, dtype);
      Tensor y = empty(c.shape, dtype);
      const int64_t tk = c.shape.back(), tq = c.causal ? c.shape[c.shape.size() - 2] : 1;
      cpu().softmax_forward(x, y, c.scale, c.causal, tq);
      const std::vector<double> xv = values(x), yv = values(y);
      std::vector<double> expected(xv.size(), 0.0);
      bool masked_exactly_zero = true;
      for (int64_t r = 0; r < x.numel() / tk; ++r) {
        const int64_t valid = c.causal ? std::min(tk, r % tq + (tk - tq) + 1) : tk;
        double mx = -INFINITY, sum = 0.0;
        for (int64_t j = 0; j < valid; ++j) mx = std::max(mx, c.scale * xv[r * tk + j]);
        for (int64_t j = 0; j < valid; ++j) sum += std::exp(c.scale * xv[r * tk + j] - mx);
        for (int64_t j = 0; j < valid; ++j) expected[r * tk + j] = std::exp(c.scale * xv[r * tk + j] - mx) / sum;
        for (int64_t j = valid; j < tk; ++j) masked_exactly_zero &= yv[r * tk + j] == 0.0;
      }
      CHECK(masked_exactly_zero);
      check_close(y, expected, tolerance(dtype) * (c.scale > 10 ? 10 : 1));  // scale 40 magnifies x's rounding

      Tensor gy = uniform(c.shape, -1, 1, gen, dtype), gx = empty(c.shape, dtype);
      cpu().softmax_backward(y, gy, gx, c.scale);
      const std::vector<double> gv = values(gy);
      std::vector<double> gexp(xv.size());
      for (int64_t r = 0; r < x.numel() / tk; ++r) {
        double dot = 0.0;
        for (int64_t j = 0; j < tk; ++j) dot += gv[r * tk + j] * yv[r * tk + j];
        for (int64_t j = 0; j < tk; ++j) gexp[r * tk + j] = c.scale * yv[r * tk + j] * (gv[r * tk + j] - dot);
      }
      check_close(gx, gexp, tolerance(dtype));
    }
  }
}

TEST_CASE("cpu log_softmax forward and backward") {
  Generator gen(9);
  for (DType dtype : kFloatTypes) {
    for (const Shape& shape : {Shape{7, 13}, Shape{300, 257}}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(shape_str(shape));
      Tensor x = uniform(shape, -20, 20, gen, dtype), y = empty(shape, dtype);
      cpu().log_softmax_forward(x, y);
      const int64_t n = shape.back(), rows = x.numel() / n;
      const std::vector<double> xv = values(x), yv = values(y);
      std::vector<double> expected(xv.size());
      for (int64_t r = 0; r < rows; ++r) {
        double mx = -INFINITY, sum = 0.0;
        for (int64_t j = 0; j < n; ++j) mx = std::max(mx, xv[r * n + j]);
        for (int64_t j = 0; j < n; ++j) sum += std::exp(xv[r * n + j] - mx);
        for (int64_t j = 0; j < n; ++j) expected[r * n + j] = xv[r * n + j] - mx - std::log(sum);
      }
      check_close(y, expected, tolerance(dtype) * 10);  // |y| up to 40: a float32 ulp of x is 2e-6 there
      Tensor gy = uniform(shape, -1, 1, gen, dtype), gx = empty(shape, dtype);
      cpu().log_softmax_backward(y, gy, gx);
      const std::vector<double> gv = values(gy);
      std::vector<double> gexp(xv.size());
      for (int64_t r = 0; r < rows; ++r) {
        double total = 0.0;
        for (int64_t j = 0; j < n; ++j) total += gv[r * n + j];
        for (int64_t j = 0; j < n; ++j) gexp[r * n + j] = gv[r * n + j] - std::exp(yv[r * n + j]) * total;
      }
      check_close(gx, gexp, tolerance(dtype));
    }
  }
}

TEST_CASE("cpu cross_entropy: ignored and out-of-range targets, lse, backward") {
  Generator gen(10);
  for (DType dtype : kFloatTypes) {
    for (int64_t rows : {int64_t{7}, int64_t{2048}}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(rows);
      const int64_t vocab = 13;
      Tensor logits = uniform({rows, vocab}, -10, 10, gen, dtype);
      std::vector<int32_t> t(static_cast<size_t>(rows));
      for (int32_t& id : t) id = static_cast<int32_t>(gen.below(vocab));
      t[0] = -1, t[1] = vocab, t[2] = -7, t[3] = vocab - 1, t[4] = 0;  // ignored, two out of range, both edges
      Tensor targets = from_ints(t, {rows});
      Tensor losses = empty({rows}, dtype), lse = empty({rows}, dtype), divisor = empty({}, dtype);
      // Targets out of range are the data's mistake: the forward throws, saying how many and what is allowed.
      CHECK_THROWS_WITH_AS(cpu().cross_entropy_forward(logits, targets, losses, lse),
                           "cross_entropy: 2 target ids lie outside [-1, 13); every target must be a token id below "
                           "vocab_size or -1 (ignored)",
                           Error);
      // The same rows ignored instead: every loss but theirs, and the mean's divisor, the count of the rest.
      std::vector<int32_t> valid = t;
      valid[1] = valid[2] = -1;
      cpu().cross_entropy_forward(logits, from_ints(valid, {rows}), losses, lse);
      cpu().count_targets(from_ints(valid, {rows}), vocab, divisor);
      CHECK(divisor.item() == static_cast<double>(rows - 3));
      const std::vector<double> x = values(logits);
      std::vector<double> lse_ref, loss_ref;
      for (int64_t r = 0; r < rows; ++r) {
        double mx = -INFINITY, sum = 0.0;
        for (int64_t j = 0; j < vocab; ++j) mx = std::max(mx, x[r * vocab + j]);
        for (int64_t j = 0; j < vocab; ++j) sum += std::exp(x[r * vocab + j] - mx);
        lse_ref.push_back(mx + std::log(sum));
        const bool counted = t[r] >= 0 && t[r] < vocab;
        loss_ref.push_back(counted ? lse_ref.back() - x[r * vocab + t[r]] : 0.0);
      }
      check_close(lse, lse_ref, tolerance(dtype) * 10);  // |lse| up to ~12
      check_close(losses, loss_ref, tolerance(dtype) * 10);
      CHECK(values(losses)[0] == 0.0);
      CHECK(values(losses)[1] == 0.0);

      Tensor grad = uniform({rows}, 0.5, 1.5, gen, dtype), glogits = empty({rows, vocab}, dtype);
      cpu().cross_entropy_backward(logits, targets, lse, grad, glogits);
      const std::vector<double> g = values(grad), l = values(lse);
      std::vector<double> expected;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < vocab; ++j) {
          const bool counted = t[r] >= 0 && t[r] < vocab;
          expected.push_back(counted ? g[r] * (std::exp(x[r * vocab + j] - l[r]) - (j == t[r] ? 1.0 : 0.0)) : 0.0);
        }
      check_close(glogits, expected, tolerance(dtype));
      bool ignored_rows_zero = true;
      const std::vector<double> gl = values(glogits);
      for (int64_t j = 0; j < 3 * vocab; ++j) ignored_rows_zero &= gl[j] == 0.0;
      CHECK(ignored_rows_zero);
      // every target ignored: the divisor is 1, so the mean is 0 rather than 0/0
      cpu().count_targets(from_ints(std::vector<int32_t>(t.size(), -1), {rows}), vocab, divisor);
      CHECK(divisor.item() == 1.0);
      cpu().count_targets(targets, vocab, divisor);  // out of range counts as ignored
      CHECK(divisor.item() == static_cast<double>(rows - 3));
      // glogits may be the logits themselves (linear_cross_entropy turns a chunk's logits into G in place)
      Tensor in_place = logits.clone_data();
      cpu().cross_entropy_backward(in_place, targets, lse, grad, in_place);
      check_close(in_place, expected, tolerance(dtype));
    }
  }
}

TEST_CASE("cpu embedding: lookup, and a backward where repeated ids accumulate") {
  Generator gen(11);
  for (DType dtype : kFloatTypes) {
    for (int64_t n : {int64_t{50}, int64_t{4000}}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(n);
      const int64_t rows = 10, dim = 21;
      Tensor weight = uniform({rows, dim}, -1, 1, gen, dtype);
      std::vector<int32_t> id_values(static_cast<size_t>(n));
      for (int32_t& id : id_values) id = static_cast<int32_t>(gen.below(4));  // ids 0..3 only: many repeats
      id_values[1] = rows - 1;
      Tensor ids = from_ints(id_values, {n});
      Tensor out = empty({n, dim}, dtype);
      cpu().embedding_forward(weight, ids, out);
      const std::vector<double> w = values(weight);
      std::vector<double> expected;
      for (int32_t id : id_values)
        for (int64_t j = 0; j < dim; ++j) expected.push_back(w[id * dim + j]);
      CHECK(values(out) == expected);

      Tensor gout = uniform({n, dim}, -1, 1, gen, dtype);
      Tensor gweight = uniform({rows, dim}, -1, 1, gen, dtype);  // accumulates into what is there
      std::vector<double> gexp = values(gweight);
      const std::vector<double> go = values(gout);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < dim; ++j) gexp[id_values[i] * dim + j] += go[i * dim + j];
      cpu().embedding_backward(ids, gout, gweight);
      check_close(gweight, gexp, tolerance(dtype) * (n > 100 ? 100 : 1));  // float32 sums of ~1000 terms
    }
  }
  Tensor weight = ones({4, 3}), out = empty({2, 3});
  Tensor bad = from_ints({1, 4}, {2});
  check_error_mentions([&] { cpu().embedding_forward(weight, bad, out); }, {"embedding_forward", "4", "[0, 4)"});
}

TEST_CASE("cpu rms_norm forward and backward") {
  Generator gen(12);
  const double eps = 1.1920928955078125e-07;
  for (DType dtype : kFloatTypes) {
    for (const Shape& shape : {Shape{7, 13}, Shape{300, 256}}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(shape_str(shape));
      const int64_t d = shape.back(), rows = shape[0];
      Tensor x = uniform(shape, -2, 2, gen, dtype), y = empty(shape, dtype), rstd = empty({rows}, dtype);
      cpu().rms_norm_forward(x, y, rstd, eps);
      const std::vector<double> xv = values(x);
      std::vector<double> yexp, rexp;
      for (int64_t r = 0; r < rows; ++r) {
        double ss = 0.0;
        for (int64_t j = 0; j < d; ++j) ss += xv[r * d + j] * xv[r * d + j];
        rexp.push_back(1.0 / std::sqrt(ss / d + eps));
        for (int64_t j = 0; j < d; ++j) yexp.push_back(xv[r * d + j] * rexp.back());
      }
      check_close(y, yexp, tolerance(dtype));
      check_close(rstd, rexp, tolerance(dtype));

      Tensor gy = uniform(shape, -1, 1, gen, dtype), gx = empty(shape, dtype);
      cpu().rms_norm_backward(x, rstd, gy, gx);
      const std::vector<double> gv = values(gy), rv = values(rstd);
      std::vector<double> gexp;
      for (int64_t r = 0; r < rows; ++r) {
        double dot = 0.0;
        for (int64_t j = 0; j < d; ++j) dot += gv[r * d + j] * xv[r * d + j];
        for (int64_t j = 0; j < d; ++j)
          gexp.push_back(rv[r] * (gv[r * d + j] - xv[r * d + j] * rv[r] * rv[r] * dot / d));
      }
      check_close(gx, gexp, tolerance(dtype));
    }
  }
}

TEST_CASE("cpu rope: the spec's half-split rotation, and inverse undoes it") {
  Generator gen(13);
  for (DType dtype : kFloatTypes) {
    for (int64_t P : {int64_t{5}, int64_t{2048}}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(P);
      const int64_t inner = 3, dh = 8, half = dh / 2;
      std::vector<int32_t> pos(static_cast<size_t>(P));
      for (int64_t p = 0; p < P; ++p) pos[p] = static_cast<int32_t>(p % 1024);
      pos[P - 1] = 1023;
      Tensor positions = from_ints(pos, {P});
      Tensor x = uniform({P, inner, dh}, -1, 1, gen, dtype), y = empty({P, inner, dh}, dtype);
      cpu().rope(x, positions, y, inner, false);
      Tensor back = empty({P, inner, dh}, dtype);
      cpu().rope(y, positions, back, inner, true);
      const std::vector<double> xv = values(x);
      std::vector<double> fwd(xv.size()), inv(xv.size());
      for (int64_t p = 0; p < P; ++p)
        for (int64_t j = 0; j < half; ++j) {
          // θ in the tensor's own precision, as the spec asks
          const double theta =
              dtype == DType::F32
                  ? static_cast<double>(static_cast<float>(pos[p]) * std::pow(10000.0f, -static_cast<float>(2 * j) / static_cast<float>(dh)))
                  : static_cast<double>(pos[p]) * std::pow(10000.0, -static_cast<double>(2 * j) / static_cast<double>(dh));
          const double c = std::cos(theta), s = std::sin(theta);
          for (int64_t r = 0; r < inner; ++r) {
            const int64_t i0 = (p * inner + r) * dh + j, i1 = i0 + half;
            fwd[i0] = xv[i0] * c + xv[i1] * s;
            fwd[i1] = -xv[i0] * s + xv[i1] * c;
            inv[i0] = xv[i0] * c - xv[i1] * s;
            inv[i1] = xv[i0] * s + xv[i1] * c;
          }
        }
      check_close(y, fwd, tolerance(dtype));
      check_close(back, xv, tolerance(dtype));
      Tensor rotated_back = empty({P, inner, dh}, dtype);
      cpu().rope(x, positions, rotated_back, inner, true);
      check_close(rotated_back, inv, tolerance(dtype));
    }
  }
  Tensor odd = ones({2, 1, 5}), out = empty({2, 1, 5});
  check_error_mentions([&] { cpu().rope(odd, from_ints({0, 1}, {2}), out, 1, false); }, {"rope", "even"});
}

TEST_CASE("cpu adamw_step: decoupled weight decay, bias correction and gradient scale") {
  Generator gen(14);
  const AdamWHyper base{1e-2, 0.9, 0.95, 1e-8, 0.1, 1, 0.5};
  std::vector<AdamWSlot> slots;
  for (int64_t n : {int64_t{91}, int64_t{40000}}) {
    slots.push_back({uniform({n}, -1, 1, gen), uniform({n}, -1, 1, gen), zeros({n}), zeros({n})});
  }
  std::vector<std::vector<double>> p, m, v;
  for (const AdamWSlot& s : slots) {
    p.push_back(values(s.param));
    m.push_back(std::vector<double>(p.back().size(), 0.0));
    v.push_back(std::vector<double>(p.back().size(), 0.0));
  }
  for (int64_t step = 1; step <= 3; ++step) {
    AdamWHyper h = base;
    h.step = step;
    cpu().adamw_step(slots, h);
    for (size_t s = 0; s < slots.size(); ++s) {
      const std::vector<double> g = values(slots[s].grad);
      for (size_t i = 0; i < g.size(); ++i) {
        const double gi = g[i] * h.grad_scale;
        p[s][i] -= h.lr * h.weight_decay * p[s][i];
        m[s][i] = h.beta1 * m[s][i] + (1 - h.beta1) * gi;
        v[s][i] = h.beta2 * v[s][i] + (1 - h.beta2) * gi * gi;
        const double mhat = m[s][i] / (1 - std::pow(h.beta1, step)), vhat = v[s][i] / (1 - std::pow(h.beta2, step));
        p[s][i] -= h.lr * mhat / (std::sqrt(vhat) + h.eps);
      }
    }
  }
  for (size_t s = 0; s < slots.size(); ++s) {
    check_close(slots[s].param, p[s], 1e-6);
    check_close(slots[s].exp_avg, m[s], 1e-6);
    check_close(slots[s].exp_avg_sq, v[s], 1e-6);
  }
  std::vector<AdamWSlot> doubles = {{zeros({2}, DType::F64), zeros({2}, DType::F64), zeros({2}, DType::F64),
                                     zeros({2}, DType::F64)}};
  check_error_mentions([&] { cpu().adamw_step(doubles, base); }, {"adamw_step", "float64", "float32"});
}

}  // TEST_SUITE
