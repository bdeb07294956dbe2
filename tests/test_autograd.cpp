// The autograd engine itself: graph shapes, accumulation, no-grad, graph freeing, in-place detection,
// and the gradient checker catching a wrong derivative.
#include <doctest/doctest.h>

#include "test_helpers.h"

using namespace t6;
using namespace t6::testing;

TEST_CASE("a diamond graph sums the gradients of both paths") {
  // y = a·b + exp(a) uses `a` twice: dy/da = b + e^a, dy/db = a
  Tensor a = from_vector({0.5, -1.0}, {2}, DType::F64).set_requires_grad();
  Tensor b = from_vector({2.0, 3.0}, {2}, DType::F64).set_requires_grad();
  Tensor y = sum(a * b + exp(a));
  y.backward();
  check_close(a.grad(), {2.0 + std::exp(0.5), 3.0 + std::exp(-1.0)}, 1e-12);
  check_close(b.grad(), {0.5, -1.0}, 1e-12);
}

TEST_CASE("a tensor used twice by one op gets both gradients") {
  Tensor a = from_vector({3.0}, {1}, DType::F64).set_requires_grad();
  sum(a * a).backward();  // d(a²)/da = 2a
  check_close(a.grad(), {6.0}, 1e-12);
}

TEST_CASE("gradients accumulate across backward calls until zeroed") {
  Tensor w = from_vector({1.0, 2.0}, {2}, DType::F64).set_requires_grad();
  sum(scale(w, 3.0)).backward();
  sum(scale(w, 3.0)).backward();
  check_close(w.grad(), {6.0, 6.0}, 1e-12);
  w.zero_grad();
  CHECK_FALSE(w.grad().defined());
  sum(w).backward();
  check_close(w.grad(), {1.0, 1.0}, 1e-12);
}

TEST_CASE("no-grad scope records nothing") {
  Tensor w = from_vector({1.0}, {1}, DType::F64).set_requires_grad();
  {
    NoGradGuard guard;
    Tensor y = w * w;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
  }
  CHECK(grad_enabled());
  CHECK((w * w).requires_grad());
  CHECK_THROWS_WITH_AS(from_vector({1.0}).backward(), doctest::Contains("does not require grad"), Error);
}

TEST_CASE("backward frees the graph unless asked to retain it") {
  Tensor w = from_vector({2.0}, {1}, DType::F64).set_requires_grad();
  Tensor y = sum(exp(w));
  y.backward({}, /*retain_graph=*/true);
  y.backward();  // allowed: the graph was retained
  check_close(w.grad(), {2 * std::exp(2.0)}, 1e-12);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("already freed"), Error);
}

TEST_CASE("backward needs a scalar or an explicit upstream gradient") {
  Tensor w = from_vector({1.0, 2.0}, {2}, DType::F64).set_requires_grad();
  Tensor y = scale(w, 2.0);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("not a scalar"), Error);
  y.backward(from_vector({1.0, 10.0}, {2}, DType::F64));
  check_close(w.grad(), {2.0, 20.0}, 1e-12);
  CHECK_THROWS_AS(scale(w, 2.0).backward(from_vector({1.0}, {1}, DType::F64)), Error);
}

TEST_CASE("modifying a saved tensor in place is reported, not silently wrong") {
  Tensor w = from_vector({1.0, 2.0}, {2}, DType::F64).set_requires_grad();
  Tensor e = exp(w);        // exp saves its output e for backward
  Tensor y = sum(e);
  e.detach().fill_(0.0);    // overwrite what exp saved
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("'exp' saved for backward was modified in place"), Error);
  // an op that saved nothing (add) does not mind
  Tensor v = from_vector({1.0}, {1}, DType::F64).set_requires_grad();
  Tensor s = add(v, v);
  Tensor z = sum(s);
  s.detach().fill_(5.0);
  z.backward();
  check_close(v.grad(), {2.0}, 1e-12);
}

TEST_CASE("only leaves can be marked and integer tensors cannot require grad") {
  Tensor w = from_vector({1.0}, {1}, DType::F64).set_requires_grad();
  Tensor y = scale(w, 2.0);
  CHECK_THROWS_AS(y.set_requires_grad(false), Error);
  CHECK_THROWS_AS(from_ints({1, 2}).set_requires_grad(), Error);
}

TEST_CASE("gradcheck catches a wrong derivative and reports where") {
  Generator gen(5);
  Tensor x = random_leaf({3, 4}, gen);
  // A function whose hand-written backward is deliberately off by a factor on one element.
  auto wrong = [](const std::vector<Tensor>& in) {
    Tensor y = mul(in[0], in[0]);
    Tensor y_detached = y.detach().clone_data();
    if (Node* node = make_node("wrong_square", y_detached, {in[0]})) {
      node->backward = [x = node->save(in[0])](const Tensor& gy) -> Grads {
        Tensor g = scale(mul(gy, x), 2.0).clone_data();
        g.data<double>()[5] *= 1.1;  // the bug
        return {g};
      };
    }
    return y_detached;
  };
  GradcheckResult bad = gradcheck(wrong, {x});
  CHECK_FALSE(bad.passed);
  CHECK(bad.worst_input == 0);
  CHECK(bad.worst_element == 5);
  CHECK(bad.summary().find("FAILED") == 0);
  GradcheckResult good = gradcheck([](const std::vector<Tensor>& in) { return mul(in[0], in[0]); }, {x});
  CHECK(good.passed);
  CHECK(good.derivatives_checked == 12);
  CHECK_FALSE(x.grad().defined());  // gradcheck leaves the inputs' .grad as it found it
}

TEST_CASE("gradcheck checks large inputs along random directions") {
  Generator gen(6);
  Tensor x = random_leaf({80, 60}, gen);
  GradcheckOptions options;
  options.max_elements_per_input = 1000;
  GradcheckResult r = gradcheck([](const std::vector<Tensor>& in) { return sigmoid(in[0]); }, {x}, options);
  CHECK(r.passed);
  CHECK(r.worst_is_direction);
  CHECK(r.derivatives_checked == options.directions);
  CHECK_THROWS_AS(gradcheck([](const std::vector<Tensor>& in) { return in[0]; }, {from_vector({1.0})}), Error);
}
