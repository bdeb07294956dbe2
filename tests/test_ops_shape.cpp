// Shape ops and reductions: values against index arithmetic, float64 gradients, errors.
#include <doctest/doctest.h>

#include "test_helpers.h"

using namespace t6;
using namespace t6::testing;

TEST_CASE("reshape, permute and transpose: values and gradients") {
  Generator gen(31);
  Tensor x = random_leaf({2, 3, 4}, gen);
  const std::vector<double> v = x.to_double_vector();
  Tensor p = permute(x, {1, 2, 0});  // p[j,k,i] = x[i,j,k]
  CHECK(p.shape() == Shape{3, 4, 2});
  std::vector<double> expected;
  for (int j = 0; j < 3; ++j)
    for (int k = 0; k < 4; ++k)
      for (int i = 0; i < 2; ++i) expected.push_back(v[i * 12 + j * 4 + k]);
  check_close(p, expected, 0);
  // multiply by a fixed tensor so each output position matters differently
  Tensor w = uniform({3, 4, 2}, -1, 1, gen, DType::F64);
  check_gradients([&](const std::vector<Tensor>& in) { return mul(permute(in[0], {1, 2, 0}), w); }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return reshape(transpose(in[0], 0, 2), {4, 6}); }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return reshape(in[0], {6, -1}); }, {x});
  CHECK(reshape(x, {6, -1}).shape() == Shape{6, 4});
  CHECK_THROWS_WITH_AS(reshape(x, {5, 5}), doctest::Contains("cannot view [2, 3, 4] (24 elements) as [5, 5]"), Error);
  CHECK_THROWS_WITH_AS(permute(x, {0, 0, 1}), doctest::Contains("appears twice"), Error);
  CHECK_THROWS_WITH_AS(transpose(x, 0, 3), doctest::Contains("axis 3 is out of range"), Error);
}

TEST_CASE("slice, split and concat: values and gradients") {
  Generator gen(32);
  Tensor x = random_leaf({3, 5}, gen);
  const std::vector<double> v = x.to_double_vector();
  Tensor s = slice(x, 1, 1, 4);
  std::vector<double> expected;
  for (int i = 0; i < 3; ++i)
    for (int j = 1; j < 4; ++j) expected.push_back(v[i * 5 + j]);
  check_close(s, expected, 0);
  check_gradients([](const std::vector<Tensor>& in) { return slice(in[0], 1, 1, 4); }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return slice(in[0], 0, 2, 3); }, {x});

  std::vector<Tensor> parts = split(x, 1, {2, 1, 2});
  CHECK(parts.size() == 3);
  CHECK(parts[2].shape() == Shape{3, 2});
  check_close(parts[1], {v[2], v[7], v[12]}, 0);
  check_gradients(
      [](const std::vector<Tensor>& in) {
        std::vector<Tensor> p = split(in[0], 1, {2, 1, 2});
        return p[0] * p[2] + concat({p[1], p[1]}, 1);  // parts used in different ways
      },
      {x});

  Tensor a = random_leaf({2, 3}, gen), b = random_leaf({2, 1}, gen);
  Tensor c = concat({a, b, a}, 1);
  CHECK(c.shape() == Shape{2, 7});
  const std::vector<double> av = a.to_double_vector(), bv = b.to_double_vector();
  check_close(c, {av[0], av[1], av[2], bv[0], av[0], av[1], av[2], av[3], av[4], av[5], bv[1], av[3], av[4], av[5]}, 0);
  check_gradients([](const std::vector<Tensor>& in) { return concat({in[0], in[1], in[0]}, 1); }, {a, b});
  check_gradients([](const std::vector<Tensor>& in) { return concat({transpose(in[0], 0, 1), in[0]}, 0); },
                  {random_leaf({2, 2}, gen)});
  CHECK_THROWS_WITH_AS(slice(x, 1, 2, 9), doctest::Contains("range [2, 9) is outside axis 1 of length 5"), Error);
  CHECK_THROWS_WITH_AS(split(x, 1, {2, 2}), doctest::Contains("sizes add up to 4"), Error);
  CHECK_THROWS_WITH_AS(concat({a, zeros({3, 3}, DType::F64)}, 1), doctest::Contains("differ outside axis 1"), Error);
  CHECK_THROWS_AS(concat({}, 0), Error);
}

TEST_CASE("cast: values and gradients flow back in the source dtype") {
  Generator gen(33);
  Tensor x = random_leaf({4}, gen);
  Tensor y = cast(x, DType::F32);
  CHECK(y.dtype() == DType::F32);
  sum(scale(y, 2.0)).backward();
  CHECK(x.grad().dtype() == DType::F64);
  check_close(x.grad(), {2, 2, 2, 2}, 0);
  CHECK(to(x, Device::CPU).to_double_vector() == x.to_double_vector());
}

TEST_CASE("cast, to and contiguous: float64 gradient checks on strided inputs with a random upstream") {
  // A plain-sum upstream on a 1-D input would hide a gradient that comes back permuted; a transposed
  // [3,4] input and a random upstream do not.
  Generator gen(35);
  Tensor x = random_leaf({3, 4}, gen);
  Tensor p = random_leaf({2, 3, 4}, gen);

  // float64 → float32 → float64: linear, but each evaluation rounds to float32 (a relative 6e-8), so
  // the finite-difference step is large: the rounding adds at most 2^-24·|x|/ε to a derivative, 1e-6 here.
  GradcheckOptions coarse;
  coarse.eps = 0.125;
  const auto through_f32 = [](const std::vector<Tensor>& in) {
    return cast(cast(transpose(in[0], 0, 1), DType::F32), DType::F64);  // (4,3), float64 again
  };
  const GradcheckResult cast_check = gradcheck(through_f32, {x}, coarse);
  INFO(cast_check.summary());
  CHECK(cast_check.passed);
  CHECK(cast_check.derivatives_checked == 12);
  CHECK(through_f32({x}).dtype() == DType::F64);
  const std::vector<double> v = x.to_double_vector(), t = through_f32({x}).to_double_vector();
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) CHECK(t[j * 3 + i] == static_cast<double>(static_cast<float>(v[i * 4 + j])));

  // to(): a move to the same device is a view; its gradient comes back through the inverse permute
  check_gradients([](const std::vector<Tensor>& in) { return to(transpose(in[0], 0, 1), Device::CPU); }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return to(permute(in[0], {2, 0, 1}), Device::CPU); }, {p});

  // contiguous(): a packed copy of a strided view, and x itself when already packed
  const Tensor packed = contiguous(permute(p, {2, 0, 1}));
  CHECK(packed.is_contiguous());
  CHECK(packed.shape() == Shape{4, 2, 3});
  const std::vector<double> pv = p.to_double_vector(), cv = packed.to_double_vector();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) CHECK(cv[(k * 2 + i) * 3 + j] == pv[(i * 3 + j) * 4 + k]);
  check_gradients([](const std::vector<Tensor>& in) { return contiguous(permute(in[0], {2, 0, 1})); }, {p});
  check_gradients([](const std::vector<Tensor>& in) { return contiguous(slice(in[0], 1, 1, 3)); }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return mul(contiguous(in[0]), in[0]); }, {x});
}

TEST_CASE("sum and mean, over all elements and over one axis") {
  Generator gen(34);
  Tensor x = random_leaf({2, 3, 4}, gen);
  const std::vector<double> v = x.to_double_vector();
  double total = 0;
  for (double e : v) total += e;
  CHECK(sum(x).item() == doctest::Approx(total).epsilon(1e-14));
  CHECK(sum(x).ndim() == 0);
  CHECK(mean(x).item() == doctest::Approx(total / 24).epsilon(1e-14));
  for (int axis = 0; axis < 3; ++axis) {
    INFO("axis " << axis);
    const Shape s = {2, 3, 4};
    Shape out = s;
    out.erase(out.begin() + axis);
    std::vector<double> expected(static_cast<size_t>(numel_of(out)), 0.0);
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j)
        for (int k = 0; k < 4; ++k) {
          const int idx[3] = {i, j, k};
          int64_t flat = 0;
          for (int d = 0, e = 0; d < 3; ++d)
            if (d != axis) flat = flat * out[e++] + idx[d];
          expected[flat] += v[i * 12 + j * 4 + k];
        }
    check_close(sum(x, axis), expected, 1e-14);
    CHECK(sum(x, axis).shape() == out);
    CHECK(sum(x, axis, true).shape()[axis] == 1);
    for (double& e : expected) e /= s[axis];
    check_close(mean(x, axis), expected, 1e-14);
    check_gradients([axis](const std::vector<Tensor>& in) { return sum(in[0], axis); }, {x});
    check_gradients([axis](const std::vector<Tensor>& in) { return mean(in[0], axis, true); }, {x});
  }
  check_gradients([](const std::vector<Tensor>& in) { return sum(in[0]); }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return mean(transpose(in[0], 0, 2)); }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return sum(transpose(in[0], 0, 1), -1); }, {x});
  CHECK_THROWS_WITH_AS(sum(x, 3), doctest::Contains("sum: axis 3 is out of range"), Error);
  CHECK_THROWS_AS(sum(from_ints({1, 2})), Error);
}
