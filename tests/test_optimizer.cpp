// The optimizer and its schedule (train/adamw.h, train/lr_schedule.h): AdamW with decoupled weight
// decay, bias correction and global-norm clipping against a plain loop written here, and the
// learning-rate schedule against nanoGPT's get_lr.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/tensor.h"
#include "data_test_support.h"
#include "train/adamw.h"
#include "train/lr_schedule.h"

using t6::testing::error_message;

namespace {

// nanoGPT's get_lr (train.py), transcribed; `it` is the iteration about to run, counting from 0.
double nanogpt_get_lr(int64_t it, double learning_rate, double min_lr, int64_t warmup_iters, int64_t lr_decay_iters) {
  if (it < warmup_iters) return learning_rate * static_cast<double>(it) / static_cast<double>(warmup_iters);
  if (it > lr_decay_iters) return min_lr;
  const double decay_ratio =
      static_cast<double>(it - warmup_iters) / static_cast<double>(lr_decay_iters - warmup_iters);
  const double coeff = 0.5 * (1.0 + std::cos(M_PI * decay_ratio));
  return min_lr + coeff * (learning_rate - min_lr);
}

t6::OptimConfig schedule(const std::string& kind, int64_t warmup, int64_t decay) {
  t6::OptimConfig o;
  o.lr = 6e-4;
  o.min_lr = 3e-5;
  o.warmup_steps = warmup;
  o.decay_steps = decay;
  o.schedule = t6::schedule_names().parse(kind, "schedule");
  return o;
}

// One parameter tensor of the reference: values, moments and the gradient of the current step, all in
// double precision, updated exactly as the spec writes AdamW.
struct ReferenceParam {
  std::vector<double> p, m, v, g;
};

// The reference step: clip the global norm, decay, then Adam with bias correction. Returns the norm
// before clipping.
double reference_adamw_step(std::vector<ReferenceParam>& params, const t6::OptimConfig& o, double lr, int64_t step) {
  double sum = 0.0;
  for (const ReferenceParam& r : params)
    for (double g : r.g) sum += g * g;
  const double norm = std::sqrt(sum);
  const double clip = o.grad_clip > 0 && norm > o.grad_clip ? o.grad_clip / (norm + 1e-6) : 1.0;
  for (ReferenceParam& r : params) {
    for (size_t i = 0; i < r.p.size(); ++i) {
      const double g = r.g[i] * clip;
      r.p[i] -= lr * o.weight_decay * r.p[i];
      r.m[i] = o.beta1 * r.m[i] + (1 - o.beta1) * g;
      r.v[i] = o.beta2 * r.v[i] + (1 - o.beta2) * g * g;
      const double m_hat = r.m[i] / (1 - std::pow(o.beta1, static_cast<double>(step)));
      const double v_hat = r.v[i] / (1 - std::pow(o.beta2, static_cast<double>(step)));
      r.p[i] -= lr * m_hat / (std::sqrt(v_hat) + o.eps);
    }
  }
  return norm;
}

// Largest |a − b| relative to max(|b|, 1e-3): float32 storage rounds every value the reference keeps in
// double, so the comparison allows a few float32 ulps.
// |a − b| relative to |b|, or to `floor` where |b| is smaller.
double max_relative_error(const std::vector<double>& a, const std::vector<double>& b, double floor = 1e-3) {
  REQUIRE(a.size() == b.size());
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(a[i] - b[i]) / std::max(std::fabs(b[i]), floor));
  return worst;
}

std::vector<double> deterministic_values(size_t n, double phase, double amplitude) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = amplitude * std::sin(phase + 1.7 * static_cast<double>(i));
  return v;
}

// Runs five AdamW steps of t6 and of the reference on two parameters with changing gradients and
// learning rates; the second parameter gets no gradient on step 3 (it then only decays, and its
// moments decay too). Checks the parameters, moments and reported norms after every step.
void compare_with_reference(const t6::OptimConfig& o, double gradient_size, bool expect_clipping) {
  const std::vector<t6::Shape> shapes = {{3, 4}, {5}};
  std::vector<ReferenceParam> reference;
  std::vector<t6::Tensor> params;
  for (size_t k = 0; k < shapes.size(); ++k) {
    const size_t n = static_cast<size_t>(t6::numel_of(shapes[k]));
    ReferenceParam r{deterministic_values(n, 0.3 + static_cast<double>(k), 0.5),
                     std::vector<double>(n, 0.0),
                     std::vector<double>(n, 0.0),
                     {}};
    for (double& x : r.p) x = static_cast<double>(static_cast<float>(x));  // start from the same float32 values
    params.push_back(t6::from_vector(r.p, shapes[k], t6::DType::F32));
    params.back().set_requires_grad(true);
    reference.push_back(r);
  }
  t6::AdamW optimizer(params, o);
  for (int64_t step = 1; step <= 5; ++step) {
    const double lr = 1e-2 * static_cast<double>(step);
    for (size_t k = 0; k < params.size(); ++k) {
      const bool missing = k == 1 && step == 3;
      std::vector<double> g =
          deterministic_values(reference[k].p.size(), static_cast<double>(step + 3 * k), gradient_size);
      for (double& x : g) x = missing ? 0.0 : static_cast<double>(static_cast<float>(x));
      reference[k].g = g;
      if (missing) {
        params[k].zero_grad();
      } else {
        params[k].set_grad(t6::from_vector(g, shapes[k], t6::DType::F32));
      }
    }
    const double expected_norm = reference_adamw_step(reference, o, lr, step);
    CAPTURE(step);
    CHECK((expected_norm > o.grad_clip) == expect_clipping);
    CHECK(optimizer.step(lr) == doctest::Approx(expected_norm).epsilon(1e-12));
    CHECK(optimizer.steps_taken() == step);
    for (size_t k = 0; k < params.size(); ++k) {
      CAPTURE(k);
      // AdamW computes in float32: an update of size ~lr carries float32 rounding at that size, so a
      // parameter that passes near zero is held to lr's scale (a build without FMA contraction erred
      // by 1.03e-5 of a 1e-3 floor there).
      CHECK(max_relative_error(params[k].to_double_vector(), reference[k].p, lr) < 1e-5);
      CHECK(max_relative_error(optimizer.exp_avg()[k].to_double_vector(), reference[k].m) < 1e-5);
      CHECK(max_relative_error(optimizer.exp_avg_sq()[k].to_double_vector(), reference[k].v) < 1e-5);
    }
  }
}

}  // namespace

TEST_CASE("learning rate: warm-up from 0, cosine decay to min_lr at decay_steps, constant after, as nanoGPT") {
  const t6::OptimConfig o = schedule("cosine", 10, 50);
  for (int64_t it = 0; it <= 70; ++it) {
    CAPTURE(it);
    CHECK(t6::learning_rate(o, it) == doctest::Approx(nanogpt_get_lr(it, 6e-4, 3e-5, 10, 50)).epsilon(1e-14));
  }
  CHECK(t6::learning_rate(o, 0) == 0.0);  // the first update (step 1) runs at 0
  CHECK(t6::learning_rate(o, 5) == doctest::Approx(3e-4).epsilon(1e-14));
  CHECK(t6::learning_rate(o, 10) == doctest::Approx(6e-4).epsilon(1e-14));               // update 11: the full lr
  CHECK(t6::learning_rate(o, 30) == doctest::Approx((6e-4 + 3e-5) / 2).epsilon(1e-14));  // halfway down
  CHECK(t6::learning_rate(o, 50) == doctest::Approx(3e-5).epsilon(1e-14));               // reaches min_lr
  CHECK(t6::learning_rate(o, 51) == 3e-5);
  CHECK(t6::learning_rate(o, 1000000) == 3e-5);
}

TEST_CASE("learning rate: linear and constant schedules, and no warm-up") {
  const t6::OptimConfig linear = schedule("linear", 10, 50);
  CHECK(t6::learning_rate(linear, 5) == doctest::Approx(3e-4).epsilon(1e-14));
  CHECK(t6::learning_rate(linear, 10) == doctest::Approx(6e-4).epsilon(1e-14));
  CHECK(t6::learning_rate(linear, 20) == doctest::Approx(3e-5 + 0.75 * (6e-4 - 3e-5)).epsilon(1e-14));
  CHECK(t6::learning_rate(linear, 50) == doctest::Approx(3e-5).epsilon(1e-14));
  CHECK(t6::learning_rate(linear, 60) == 3e-5);

  const t6::OptimConfig constant = schedule("constant", 10, 50);
  CHECK(t6::learning_rate(constant, 0) == 0.0);
  CHECK(t6::learning_rate(constant, 4) == doctest::Approx(2.4e-4).epsilon(1e-14));
  for (int64_t it : {10, 30, 50, 51, 5000}) CHECK(t6::learning_rate(constant, it) == 6e-4);

  const t6::OptimConfig no_warmup = schedule("cosine", 0, 40);
  CHECK(t6::learning_rate(no_warmup, 0) == 6e-4);
  CHECK(t6::learning_rate(no_warmup, 20) == doctest::Approx((6e-4 + 3e-5) / 2).epsilon(1e-14));
  CHECK(t6::learning_rate(no_warmup, 40) == doctest::Approx(3e-5).epsilon(1e-14));

  const t6::OptimConfig warmup_only = schedule("cosine", 20, 20);  // decay_steps = warmup_steps: a drop
  CHECK(t6::learning_rate(warmup_only, 19) == doctest::Approx(6e-4 * 19 / 20).epsilon(1e-14));
  CHECK(t6::learning_rate(warmup_only, 20) == 3e-5);
}

TEST_CASE("AdamW matches a plain reference loop: betas, eps, decoupled weight decay, bias correction") {
  t6::OptimConfig o;  // the spec's defaults: betas (0.9, 0.95), eps 1e-8, weight decay 0.1, clip 1.0
  CHECK(o.beta1 == 0.9);
  CHECK(o.beta2 == 0.95);
  CHECK(o.eps == 1e-8);
  CHECK(o.weight_decay == 0.1);
  CHECK(o.grad_clip == 1.0);
  SUBCASE("small gradients: no clipping") { compare_with_reference(o, 0.05, false); }
  SUBCASE("large gradients: clipped to the global norm 1") { compare_with_reference(o, 3.0, true); }
  SUBCASE("clipping off (grad_clip 0)") {
    o.grad_clip = 0.0;
    compare_with_reference(o, 3.0, true);
  }
  SUBCASE("other hyperparameters, clipping at 0.5") {
    o.beta1 = 0.8;
    o.beta2 = 0.99;
    o.eps = 1e-3;
    o.weight_decay = 0.5;
    o.grad_clip = 0.5;
    compare_with_reference(o, 1.0, true);
  }
}

TEST_CASE("AdamW: the first step moves each parameter by lr (times its gradient's sign) after the decay") {
  t6::OptimConfig o;
  o.grad_clip = 0.0;
  t6::Tensor p = t6::from_vector({1.0, -2.0, 0.5}, {3}, t6::DType::F32);
  p.set_requires_grad(true);
  p.set_grad(t6::from_vector({0.3, -4.0, 1e-3}, {3}, t6::DType::F32));
  t6::AdamW optimizer({p}, o);
  optimizer.step(0.01);
  // m̂ = g and v̂ = g² after one step, so the Adam step is lr·g/(|g| + eps) ≈ lr·sign(g).
  const std::vector<double> after = p.to_double_vector();
  CHECK(after[0] == doctest::Approx(1.0 * (1 - 0.001) - 0.01).epsilon(1e-6));
  CHECK(after[1] == doctest::Approx(-2.0 * (1 - 0.001) + 0.01).epsilon(1e-6));
  CHECK(after[2] == doctest::Approx(0.5 * (1 - 0.001) - 0.01 * 1e-3 / (1e-3 + 1e-8)).epsilon(1e-6));
}

TEST_CASE("AdamW refuses a non-finite gradient norm and changes nothing") {
  t6::OptimConfig o;
  t6::Tensor p = t6::from_vector({1.0, 2.0}, {2}, t6::DType::F32);
  p.set_requires_grad(true);
  t6::AdamW optimizer({p}, o);
  p.set_grad(t6::from_vector({0.5, 0.5}, {2}, t6::DType::F32));
  optimizer.step(0.1);
  const std::vector<double> params = p.to_double_vector(), m = optimizer.exp_avg()[0].to_double_vector(),
                            v = optimizer.exp_avg_sq()[0].to_double_vector();
  for (double bad : {NAN, INFINITY}) {
    p.set_grad(t6::from_vector({0.5, bad}, {2}, t6::DType::F32));
    CHECK(error_message([&] { optimizer.step(0.1); }).find("AdamW: the global gradient norm is") != std::string::npos);
    CHECK(p.to_double_vector() == params);
    CHECK(optimizer.exp_avg()[0].to_double_vector() == m);
    CHECK(optimizer.exp_avg_sq()[0].to_double_vector() == v);
    CHECK(optimizer.steps_taken() == 1);
  }
}

TEST_CASE("AdamW state round trip, and a state of the wrong size or shape is refused") {
  t6::OptimConfig o;
  t6::Tensor a = t6::from_vector({1.0, 2.0}, {2}, t6::DType::F32), b = t6::from_vector({3.0}, {1}, t6::DType::F32);
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  t6::AdamW optimizer({a, b}, o);
  const t6::Tensor m0 = t6::from_vector({0.1, 0.2}, {2}), m1 = t6::from_vector({0.3}, {1});
  const t6::Tensor v0 = t6::from_vector({0.4, 0.5}, {2}), v1 = t6::from_vector({0.6}, {1});
  optimizer.set_state({m0, m1}, {v0, v1}, 7);
  CHECK(optimizer.steps_taken() == 7);
  CHECK(optimizer.exp_avg()[0].to_vector<float>() == std::vector<float>{0.1f, 0.2f});
  CHECK(optimizer.exp_avg_sq()[1].to_vector<float>() == std::vector<float>{0.6f});
  CHECK(error_message([&] { optimizer.set_state({m0}, {v0}, 1); }) ==
        "AdamW: state for 1 parameters given to an optimizer of 2");
  CHECK(error_message([&] {
          optimizer.set_state({m1, m0}, {v0, v1}, 1);
        }) == "AdamW: state of shape [1] for a parameter of shape [2]");
  CHECK(error_message([&] { t6::AdamW(std::vector<t6::Tensor>{}, o); }) == "AdamW: no parameters to optimize");
}
