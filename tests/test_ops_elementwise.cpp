// Elementwise ops: forward values against plain loops, float64 gradient checks, broadcasting of a
// trailing operand, non-contiguous inputs, and the errors for bad shapes and dtypes.
#include <doctest/doctest.h>

#include "test_helpers.h"

using namespace t6;
using namespace t6::testing;

namespace {

using Fn = std::function<Tensor(const Tensor&)>;
using Ref = std::function<double(double)>;

void check_unary(const char* name, const Fn& op, const Ref& ref, bool positive_only = false) {
  INFO("op: " << name);
  Generator gen(11);
  Tensor x = random_away_from_zero({3, 5}, gen, positive_only);
  std::vector<double> expected;
  for (double v : x.to_double_vector()) expected.push_back(ref(v));
  check_close(op(x), expected, 1e-14);
  check_close(op(x.to_dtype(DType::F32)), expected, 1e-6);
  check_gradients([&](const std::vector<Tensor>& in) { return op(in[0]); }, {x});
  // a transposed (non-contiguous) input gives the transposed values
  Tensor xt = transpose(x, 0, 1);
  std::vector<double> expected_t;
  for (double v : xt.to_double_vector()) expected_t.push_back(ref(v));
  check_close(op(xt), expected_t, 1e-14);
  check_gradients([&](const std::vector<Tensor>& in) { return op(transpose(in[0], 0, 1)); }, {x});
  const std::string message = std::string(name) + ": expects a float32 or float64";
  CHECK_THROWS_WITH_AS(op(from_ints({1, 2})), doctest::Contains(message.c_str()), Error);
}

double sigmoid_ref(double v) { return 1.0 / (1.0 + std::exp(-v)); }

}  // namespace

TEST_CASE("unary pointwise ops") {
  check_unary("neg", [](const Tensor& x) { return neg(x); }, [](double v) { return -v; });
  check_unary("scale", [](const Tensor& x) { return scale(x, -2.5); }, [](double v) { return -2.5 * v; });
  check_unary("add_scalar", [](const Tensor& x) { return add_scalar(x, 0.75); }, [](double v) { return v + 0.75; });
  check_unary("exp", [](const Tensor& x) { return exp(x); }, [](double v) { return std::exp(v); });
  check_unary("log", [](const Tensor& x) { return log(x); }, [](double v) { return std::log(v); }, true);
  check_unary("sqrt", [](const Tensor& x) { return sqrt(x); }, [](double v) { return std::sqrt(v); }, true);
  check_unary("rsqrt", [](const Tensor& x) { return rsqrt(x); }, [](double v) { return 1 / std::sqrt(v); }, true);
  check_unary("sigmoid", [](const Tensor& x) { return sigmoid(x); }, sigmoid_ref);
  check_unary("silu", [](const Tensor& x) { return silu(x); }, [](double v) { return v * sigmoid_ref(v); });
}

TEST_CASE("sigmoid and silu stay finite at extreme inputs") {
  Tensor x = from_vector({-1000, -50, 0, 50, 1000}, {5});
  const std::vector<double> s = sigmoid(x).to_double_vector();
  CHECK(s[0] == 0.0);
  CHECK(s[2] == 0.5);
  CHECK(s[4] == 1.0);
  for (double v : silu(x).to_double_vector()) CHECK(std::isfinite(v));
}

TEST_CASE("binary ops: forward, gradients, broadcasting") {
  Generator gen(12);
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor&, const Tensor&)> op;
    std::function<double(double, double)> ref;
  };
  const std::vector<Case> cases = {
      {"add", [](const Tensor& a, const Tensor& b) { return a + b; }, [](double a, double b) { return a + b; }},
      {"sub", [](const Tensor& a, const Tensor& b) { return a - b; }, [](double a, double b) { return a - b; }},
      {"mul", [](const Tensor& a, const Tensor& b) { return a * b; }, [](double a, double b) { return a * b; }},
      {"div", [](const Tensor& a, const Tensor& b) { return a / b; }, [](double a, double b) { return a / b; }},
  };
  for (const Case& c : cases) {
    INFO("op: " << c.name);
    Tensor a = random_away_from_zero({2, 3, 4}, gen);
    Tensor b = random_away_from_zero({2, 3, 4}, gen);
    Tensor row = random_away_from_zero({4}, gen);
    Tensor one = random_away_from_zero({}, gen);
    const std::vector<double> av = a.to_double_vector(), bv = b.to_double_vector(), rv = row.to_double_vector();
    std::vector<double> same, with_row, row_first, with_scalar;
    for (size_t i = 0; i < av.size(); ++i) {
      same.push_back(c.ref(av[i], bv[i]));
      with_row.push_back(c.ref(av[i], rv[i % 4]));
      row_first.push_back(c.ref(rv[i % 4], av[i]));
      with_scalar.push_back(c.ref(av[i], one.item()));
    }
    check_close(c.op(a, b), same, 1e-14);
    check_close(c.op(a, row), with_row, 1e-14);
    check_close(c.op(row, a), row_first, 1e-14);
    check_close(c.op(a, one), with_scalar, 1e-14);
    CHECK(c.op(row, a).shape() == Shape{2, 3, 4});
    check_gradients([&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); }, {a, b});
    check_gradients([&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); }, {a, row});
    check_gradients([&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); }, {row, a});
    check_gradients([&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); }, {a, one});
    // non-contiguous operands
    Tensor at = transpose(a, 0, 2);  // [4, 3, 2]
    Tensor bt = transpose(b, 0, 2);
    std::vector<double> expected_t;
    const std::vector<double> atv = at.to_double_vector(), btv = bt.to_double_vector();
    for (size_t i = 0; i < atv.size(); ++i) expected_t.push_back(c.ref(atv[i], btv[i]));
    check_close(c.op(at, bt), expected_t, 1e-14);
    check_gradients([&](const std::vector<Tensor>& in) { return c.op(transpose(in[0], 0, 2), transpose(in[1], 0, 2)); },
                    {a, b});
    // shape and dtype errors name the op and both shapes
    CHECK_THROWS_WITH_AS(c.op(a, zeros({3}, DType::F64)),
                         (std::string(c.name) + ": shapes [2, 3, 4] and [3] do not broadcast (the smaller shape must "
                                                "equal the trailing dimensions of the larger)")
                             .c_str(),
                         Error);
    CHECK_THROWS_WITH_AS(c.op(a, zeros({2, 3, 4}, DType::F32)), doctest::Contains("dtypes differ"), Error);
  }
}
