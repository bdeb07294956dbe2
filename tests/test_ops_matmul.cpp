// matmul: every transpose combination, batched and shared-matrix forms, transposed views passed to
// BLAS without copies, forward against a triple loop, float64 gradients, shape errors.
#include <doctest/doctest.h>

#include "test_helpers.h"

using namespace t6;
using namespace t6::testing;

namespace {

// C[b] = op(A[b]) · op(B[b]) by the definition, on plain row-major values.
std::vector<double> matmul_ref(const std::vector<double>& a, const std::vector<double>& b, int64_t batch, int64_t m,
                               int64_t n, int64_t k, bool ta, bool tb) {
  std::vector<double> c(static_cast<size_t>(batch * m * n), 0.0);
  for (int64_t z = 0; z < batch; ++z)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t p = 0; p < k; ++p) {
          const double av = ta ? a[z * m * k + p * m + i] : a[z * m * k + i * k + p];
          const double bv = tb ? b[z * k * n + j * k + p] : b[z * k * n + p * n + j];
          acc += av * bv;
        }
        c[z * m * n + i * n + j] = acc;
      }
  return c;
}

}  // namespace

TEST_CASE("matmul, all transpose flags, 2-D and batched") {
  Generator gen(21);
  const int64_t m = 3, n = 5, k = 4;
  for (int64_t batch : {1, 3}) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        INFO("batch " << batch << " ta " << ta << " tb " << tb);
        Shape sa = ta ? Shape{k, m} : Shape{m, k}, sb = tb ? Shape{n, k} : Shape{k, n};
        if (batch > 1) {
          sa.insert(sa.begin(), batch);
          sb.insert(sb.begin(), batch);
        }
        Tensor a = random_leaf(sa, gen), b = random_leaf(sb, gen);
        Tensor c = matmul(a, b, ta, tb);
        CHECK(c.shape() == (batch > 1 ? Shape{batch, m, n} : Shape{m, n}));
        check_close(c, matmul_ref(a.to_double_vector(), b.to_double_vector(), batch, m, n, k, ta, tb), 1e-13);
        check_close(matmul(a.to_dtype(DType::F32), b.to_dtype(DType::F32), ta, tb),
                    matmul_ref(a.to_double_vector(), b.to_double_vector(), batch, m, n, k, ta, tb), 1e-5);
        check_gradients([&](const std::vector<Tensor>& in) { return matmul(in[0], in[1], ta, tb); }, {a, b});
      }
    }
  }
}

TEST_CASE("one-row products (decode steps) take the matrix-vector path and agree with the definition") {
  Generator gen(24);
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      INFO("ta " << ta << " tb " << tb);
      const int64_t n = 37, k = 19;
      Tensor a = random_leaf(ta ? Shape{k, 1} : Shape{1, k}, gen), b = random_leaf(tb ? Shape{n, k} : Shape{k, n}, gen);
      check_close(matmul(a, b, ta, tb), matmul_ref(a.to_double_vector(), b.to_double_vector(), 1, 1, n, k, ta, tb), 1e-13);
      check_close(matmul(a.to_dtype(DType::F32), b.to_dtype(DType::F32), ta, tb),
                  matmul_ref(a.to_double_vector(), b.to_double_vector(), 1, 1, n, k, ta, tb), 1e-5);
      check_gradients([&](const std::vector<Tensor>& in) { return matmul(in[0], in[1], ta, tb); }, {a, b});
    }
  }
}

TEST_CASE("matmul of a batch against one shared matrix (a linear layer)") {
  Generator gen(22);
  Tensor x = random_leaf({2, 3, 4}, gen);  // (B,T,d_in)
  Tensor w = random_leaf({5, 4}, gen);     // (d_out,d_in)
  Tensor y = matmul(x, w, false, true);    // x·Wᵀ: (B,T,d_out)
  CHECK(y.shape() == Shape{2, 3, 5});
  check_close(y, matmul_ref(x.to_double_vector(), w.to_double_vector(), 1, 6, 5, 4, false, true), 1e-13);
  check_gradients([](const std::vector<Tensor>& in) { return matmul(in[0], in[1], false, true); }, {x, w});
}

TEST_CASE("matmul reads transposed and strided views correctly") {
  Generator gen(23);
  Tensor a = random_leaf({2, 4, 3}, gen), b = random_leaf({2, 4, 5}, gen);
  // transpose(a) is a view whose transpose is packed: it goes to BLAS with a flag, no copy
  Tensor at = transpose(a, 1, 2);  // (2,3,4)
  const std::vector<double> expected =
      matmul_ref(a.to_double_vector(), b.to_double_vector(), 2, 3, 5, 4, /*ta=*/true, false);
  check_close(matmul(at, b), expected, 1e-13);
  check_close(matmul(a, b, true, false), expected, 1e-13);
  check_gradients([](const std::vector<Tensor>& in) { return matmul(transpose(in[0], 1, 2), in[1]); }, {a, b});
  // a general strided view (a slice along the last axis) is packed first
  Tensor wide = random_leaf({3, 8}, gen), c = random_leaf({4, 2}, gen);
  Tensor part = slice(wide, 1, 2, 6);  // (3,4), row stride 8
  check_close(matmul(part, c), matmul_ref(contiguous(part).to_double_vector(), c.to_double_vector(), 1, 3, 2, 4, false, false),
              1e-13);
  check_gradients([](const std::vector<Tensor>& in) { return matmul(slice(in[0], 1, 2, 6), in[1]); }, {wide, c});
}

TEST_CASE("matmul shape errors name both shapes") {
  CHECK_THROWS_WITH_AS(matmul(zeros({2, 3}), zeros({4, 5})),
                       "matmul: inner dimensions differ: [2, 3] · [4, 5] (3 vs 4)", Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({2, 2, 3}), zeros({3, 3, 4})), doctest::Contains("batch dimensions"), Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({3}), zeros({3, 4})), doctest::Contains("at least 2 dimensions"), Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({2, 3}), zeros({3, 4}, DType::F64)), doctest::Contains("dtypes differ"), Error);
}
