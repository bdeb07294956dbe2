// The autograd engine itself: graph shapes, accumulation, no-grad, graph freeing, the gradient-ready
// hook, in-place detection, the gradient checker catching a wrong derivative and reporting what it
// could resolve, and the weighted cross-entropy the sharp model checks use.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "autograd/node.h"
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

TEST_CASE("an intermediate that no op saved is freed when the program drops it, before backward") {
  Tensor x = full({3}, 2.0).set_requires_grad(true);
  Tensor y = add(x, x);  // add saves nothing for its backward
  const std::weak_ptr<Storage> y_data = y.storage();
  Tensor z = add(y, y);  // a diamond through y: the graph still needs y's node, not its data
  y = Tensor();
  CHECK(y_data.expired());
  sum(z).backward();
  check_close(x.grad(), {4, 4, 4}, 0);
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

TEST_CASE("each leaf's gradient owns its storage, also where one tensor reaches several leaves") {
  // add's backward hands the same upstream tensor to both inputs, and the root's seed reaches the
  // sum: the engine adopts a gradient only where nothing else refers to it, else it copies.
  Tensor a = from_vector({1.0, 2.0}, {2}, DType::F64).set_requires_grad();
  Tensor b = from_vector({3.0, 4.0}, {2}, DType::F64).set_requires_grad();
  Tensor y = a + b;
  y.backward(from_vector({5.0, 6.0}, {2}, DType::F64));
  CHECK_FALSE(a.grad().same_storage(b.grad()));
  a.grad().add_(a.grad());  // writing one gradient leaves the other as it was
  check_close(a.grad(), {10.0, 12.0}, 1e-12);
  check_close(b.grad(), {5.0, 6.0}, 1e-12);
  Tensor upstream = from_vector({7.0, 8.0}, {2}, DType::F64);
  Tensor c = from_vector({1.0, 1.0}, {2}, DType::F64).set_requires_grad();
  c.backward(upstream);  // the root is the leaf itself: its gradient is a copy of the caller's tensor
  CHECK_FALSE(c.grad().same_storage(upstream));
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

namespace {

// What a gradient-ready hook saw: which leaf, in which order, and its .grad at that moment.
struct ReadyLog {
  std::vector<const TensorImpl*> leaves;
  std::vector<std::vector<double>> grads;
  GradReadyHook hook() {
    return [this](const Tensor& leaf) {
      leaves.push_back(leaf.impl_ptr().get());
      grads.push_back(leaf.grad().to_double_vector());
    };
  }
  size_t count(const Tensor& t) const { return std::count(leaves.begin(), leaves.end(), t.impl_ptr().get()); }
  // Position of t's (first) report; leaves.size() when none.
  size_t position(const Tensor& t) const {
    return std::find(leaves.begin(), leaves.end(), t.impl_ptr().get()) - leaves.begin();
  }
};

}  // namespace

TEST_CASE("the gradient-ready hook reports each leaf once, when its last path has run, with its final .grad") {
  // y = Σ exp(a·x)·b·a: `a` is used first and last, `b` in the middle. Backward finishes b first,
  // then a (after its second path), and x, which does not require grad, never.
  Tensor x = from_vector({0.3, -0.7}, {2}, DType::F64);
  Tensor a = from_vector({0.5, 2.0}, {2}, DType::F64).set_requires_grad();
  Tensor b = from_vector({-1.5, 0.25}, {2}, DType::F64).set_requires_grad();
  Tensor unused = from_vector({1.0}, {1}, DType::F64).set_requires_grad();
  ReadyLog log;
  sum(exp(a * x) * b * a).backward({}, false, log.hook());
  REQUIRE(log.leaves.size() == 2);
  CHECK(log.count(a) == 1);
  CHECK(log.count(b) == 1);
  CHECK(log.count(unused) == 0);
  CHECK(log.position(b) < log.position(a));
  CHECK(log.grads[log.position(a)] == a.grad().to_double_vector());  // nothing added after the report
  CHECK(log.grads[log.position(b)] == b.grad().to_double_vector());
  // dy/da = e^{ax}·b·(a·x + 1), dy/db = e^{ax}·a
  std::vector<double> da, db;
  for (int i = 0; i < 2; ++i) {
    const double ai = a.to_double_vector()[i], bi = b.to_double_vector()[i], xi = x.to_double_vector()[i];
    da.push_back(std::exp(ai * xi) * bi * (ai * xi + 1));
    db.push_back(std::exp(ai * xi) * ai);
  }
  check_close(a.grad(), da, 1e-12);
  check_close(b.grad(), db, 1e-12);
}

TEST_CASE("the gradient-ready hook reports a leaf as soon as its last path has run, not when the walk ends") {
  // y = Σ w·exp(exp(v)): w is mul's first input, so a depth-first order puts it below the whole chain
  // through v; it is final once mul has run, before exp and exp have.
  Tensor w = from_vector({2.0}, {1}, DType::F64).set_requires_grad();
  Tensor v = from_vector({0.1}, {1}, DType::F64).set_requires_grad();
  ReadyLog log;
  sum(w * exp(exp(v))).backward({}, false, log.hook());
  REQUIRE(log.leaves.size() == 2);
  CHECK(log.position(w) == 0);
  CHECK(log.position(v) == 1);
}

TEST_CASE("the gradient-ready hook skips leaves no gradient reaches, and waits for paths that carry none") {
  // An op whose backward gives its second input no gradient: exp(c) is never reached, so c gets no
  // report and no .grad; `a` also feeds that op through exp(a), and is reported once that edge is done.
  Tensor a = from_vector({1.0, 2.0}, {2}, DType::F64).set_requires_grad();
  Tensor c = from_vector({3.0, 4.0}, {2}, DType::F64).set_requires_grad();
  auto first_only = [](const Tensor& p, const Tensor& q) {
    Tensor out = p.clone_data();
    Node* node = make_node("first_only", out, {p, q});
    node->backward = [](const Tensor& grad) { return Grads{grad, Tensor()}; };
    return out;
  };
  ReadyLog log;
  sum(first_only(a, exp(a)) + first_only(a, exp(c))).backward({}, false, log.hook());
  CHECK(log.leaves.size() == 1);
  CHECK(log.count(a) == 1);
  check_close(a.grad(), {2.0, 2.0}, 1e-12);
  CHECK_FALSE(c.grad().defined());
}

TEST_CASE("the gradient-ready hook reports on every backward of a retained graph, and for a leaf root") {
  Tensor w = from_vector({2.0}, {1}, DType::F64).set_requires_grad();
  Tensor y = sum(w * w);
  ReadyLog log;
  y.backward({}, /*retain_graph=*/true, log.hook());
  y.backward({}, false, log.hook());
  REQUIRE(log.leaves.size() == 2);
  CHECK(log.grads[0] == std::vector<double>{4.0});
  CHECK(log.grads[1] == std::vector<double>{8.0});  // the second call's, accumulated
  ReadyLog root;
  w.backward(from_vector({1.0}, {1}, DType::F64), false, root.hook());
  CHECK(root.count(w) == 1);
  CHECK(root.grads[0] == std::vector<double>{9.0});
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

TEST_CASE("gradcheck reports its resolution: below atol/rtol a wrong derivative can pass") {
  Generator gen(7);
  Tensor big = random_leaf({4}, gen), tiny = random_leaf({4}, gen);
  // y = 10·big + 1e-6·tiny, so d/dbig = 10·g and d/dtiny = 1e-6·g for the random upstream g; the
  // hand-written backward makes tiny's derivatives 50% too large
  auto f = [](const std::vector<Tensor>& in) {
    Tensor y;
    {
      NoGradGuard no_grad;
      y = add(scale(in[0], 10.0), scale(in[1], 1e-6));
    }
    if (Node* node = make_node("half_wrong", y, {in[0], in[1]})) {
      node->backward = [](const Tensor& gy) -> Grads { return {scale(gy, 10.0), scale(gy, 1.5e-6)}; };
    }
    return y;
  };
  const GradcheckResult loose = gradcheck(f, {big, tiny});  // atol 1e-5, rtol 1e-3: resolution 1e-2
  CHECK(loose.passed);                                     // the 50% error hides under atol
  CHECK(loose.resolution == doctest::Approx(1e-2));
  CHECK(loose.below_resolution == 4);  // tiny's four derivatives
  CHECK(loose.least_resolved_input == 1);
  CHECK(loose.least_resolved_share == 1.0);
  CHECK(loose.smallest_magnitude < 1e-5);
  CHECK(loose.summary().find("resolution 0.01: 4 below it (the most: 100% of input 1's)") != std::string::npos);
  GradcheckOptions sharp;
  sharp.atol = 1e-8;  // above the rounding of these central differences (1e-16·|L|/ε, about 1e-9)
  const GradcheckResult caught = gradcheck(f, {big, tiny}, sharp);
  CHECK_FALSE(caught.passed);
  CHECK(caught.worst_input == 1);
  CHECK(caught.resolution == doctest::Approx(1e-5));
}

TEST_CASE("weighted_cross_entropy is Σ w_i · (−log_softmax at target i), skipping ignored targets") {
  Generator gen(8);
  Tensor logits = random_leaf({2, 3, 5}, gen, -2, 2);
  const Tensor targets = from_ints({4, -1, 0, 2, 2, 1}, {2, 3});
  const std::vector<double> weights = {0.5, 9.0, -1.25, 2.0, 0.75, -0.3};
  const std::vector<double> lv = log_softmax(logits).to_double_vector();
  const std::vector<int32_t> t = targets.to_vector<int32_t>();
  double expected = 0;
  for (int i = 0; i < 6; ++i)
    if (t[i] != -1) expected -= weights[i] * lv[i * 5 + t[i]];
  CHECK(weighted_cross_entropy(logits, targets, weights).item() == doctest::Approx(expected).epsilon(1e-13));
  check_gradients([&](const std::vector<Tensor>& in) { return weighted_cross_entropy(in[0], targets, weights); },
                  {logits});
  CHECK_THROWS_WITH_AS(weighted_cross_entropy(logits, targets, {1.0}), doctest::Contains("1 weights for 6 targets"),
                       Error);
}
