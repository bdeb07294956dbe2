// bf16 mixed precision (Bf16MatmulGuard): the scope on every machine, where the CPU matmul ignores it;
// and on a GPU, matmul with its gradients, the T6 loss and a 20-step training run in bf16 against
// float32. The GPU suite is skipped (reported as skipped) when no CUDA GPU is present.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/mixed_precision.h"
#include "core/backend.h"
#include "nn/t6_model.h"
#include "test_helpers.h"
#include "train/adamw.h"
#include "train/lr_schedule.h"

using namespace t6;
using namespace t6::testing;

namespace {

// A product and its gradients under a fixed random weighting w of the output (so dC = w, not ones); the
// same w on every call, so two calls differ only in how they multiply.
struct Product {
  Tensor c, grad_a, grad_b;
};

Product weighted_product(Tensor a, Tensor b, bool ta, bool tb) {
  a.zero_grad();
  b.zero_grad();
  Product p;
  p.c = matmul(a, b, ta, tb);
  Generator gen(99);
  sum(mul(p.c, uniform(p.c.shape(), -1, 1, gen, DType::F32, p.c.device()))).backward();
  p.grad_a = a.grad();
  p.grad_b = b.grad();
  return p;
}

// max |actual − expected| / max |expected|: the error relative to the tensor's scale, which is what
// bfloat16 rounding (8 bits of mantissa) bounds; elementwise ratios blow up near zero.
double scaled_error(const Tensor& actual, const Tensor& expected) {
  const std::vector<double> x = actual.to_double_vector(), y = expected.to_double_vector();
  REQUIRE(x.size() == y.size());
  double largest = 0, diff = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    largest = std::max(largest, std::fabs(y[i]));
    diff = std::max(diff, std::fabs(x[i] - y[i]));
  }
  return diff / std::max(largest, 1e-12);
}

ModelConfig tiny_config() {
  ModelConfig c;
  c.vocab_size = 97, c.n_layer = 2, c.n_embd = 48, c.n_head = 3, c.head_dim = 16, c.q_rank = 3, c.rank = 2;
  c.block_size = 37;
  return c;
}

// The losses of 20 AdamW steps of the tiny model on the GPU from a fixed seed, in bf16 or float32.
std::vector<double> training_losses(bool bf16) {
  const Bf16MatmulGuard guard(bf16);
  const ModelConfig c = tiny_config();
  OptimConfig o;
  o.lr = 3e-3, o.warmup_steps = 5, o.decay_steps = 20;
  T6Model model(c);
  model.to(Device::CUDA);
  AdamW optimizer(model.parameters(), o);
  Generator gen(11);
  std::vector<double> losses;
  for (int step = 0; step < 20; ++step) {
    const Tensor idx = random_token_tensor(4, 32, c.vocab_size, gen);
    model.zero_grad();
    const Tensor loss = model.forward(idx, idx).loss;
    losses.push_back(loss.item());
    loss.backward();
    optimizer.step(learning_rate(o, step));
  }
  return losses;
}

}  // namespace

TEST_CASE("Bf16MatmulGuard switches bf16 matmul on for its scope, and guards nest") {
  CHECK_FALSE(bf16_matmul_enabled());
  {
    const Bf16MatmulGuard on;
    CHECK(bf16_matmul_enabled());
    {
      const Bf16MatmulGuard off(false);
      CHECK_FALSE(bf16_matmul_enabled());
      const Bf16MatmulGuard on_again;
      CHECK(bf16_matmul_enabled());
    }
    CHECK(bf16_matmul_enabled());
  }
  CHECK_FALSE(bf16_matmul_enabled());
}

TEST_CASE("bf16_copy reuses the copy of an unchanged tensor, and only that") {
  Generator gen(4);
  Tensor x = uniform({3, 5}, -1, 1, gen);
  const Bf16MatmulGuard on;
  const Tensor first = bf16_copy(x);
  CHECK(first.dtype() == DType::BF16);
  check_close(first, x.to_dtype(DType::BF16).to_double_vector(), 0);
  CHECK(bf16_copy(x).same_storage(first));                     // the same tensor: the remembered copy
  CHECK(bf16_copy(Tensor(x)).same_storage(first));             // another handle on it: the same
  CHECK_FALSE(bf16_copy(transpose(x, 0, 1)).same_storage(first));  // another view of its storage: a new copy
  const Tensor again = bf16_copy(x);
  CHECK_FALSE(again.same_storage(first));  // the transposed view replaced the memory
  x.fill_(0.5);                            // an in-place write changes the version
  const Tensor after_write = bf16_copy(x);
  CHECK_FALSE(after_write.same_storage(again));
  check_close(after_write, std::vector<double>(15, 0.5), 0);
  {
    const Bf16MatmulGuard nested(false);
  }
  CHECK_FALSE(bf16_copy(x).same_storage(after_write));  // leaving a guard forgot it
}

TEST_CASE("on the CPU, matmul and its gradients under Bf16MatmulGuard are exactly the float32 ones") {
  Generator gen(3);
  const Tensor a = random_leaf({2, 53, 37}, gen, -1, 1, DType::F32), b = random_leaf({2, 29, 53}, gen, -1, 1, DType::F32);
  const Product fp32 = weighted_product(a, b, true, true);
  Product under_guard;
  {
    const Bf16MatmulGuard bf16;
    under_guard = weighted_product(a, b, true, true);
  }
  CHECK(under_guard.c.dtype() == DType::F32);
  CHECK(under_guard.c.to_double_vector() == fp32.c.to_double_vector());
  CHECK(under_guard.grad_a.to_double_vector() == fp32.grad_a.to_double_vector());
  CHECK(under_guard.grad_b.to_double_vector() == fp32.grad_b.to_double_vector());
}

TEST_CASE("bf16_weight keeps one copy per weight until the weight changes, while gradients are recorded") {
  Generator gen(6);
  Tensor w = random_leaf({7, 5}, gen, -1, 1, DType::F32);
  const Bf16MatmulGuard on;
  const Tensor first = bf16_weight(w);
  CHECK(first.dtype() == DType::BF16);
  check_close(first, w.to_dtype(DType::BF16).to_double_vector(), 0);
  CHECK(bf16_weight(w).same_storage(first));  // unchanged: the same copy
  Tensor other = random_leaf({7, 5}, gen, -1, 1, DType::F32);
  CHECK_FALSE(bf16_weight(other).same_storage(first));  // a copy per weight
  CHECK(bf16_weight(w).same_storage(first));            // and w's is still there
  w.fill_(0.25);  // what the optimizer step does: an in-place write moves the version
  const Tensor after_step = bf16_weight(w);
  CHECK_FALSE(after_step.same_storage(first));
  check_close(after_step, std::vector<double>(35, 0.25), 0);
  {
    const NoGradGuard inference;  // no copies kept: inference may capture graphs that own their buffers
    CHECK_FALSE(bf16_weight(w).same_storage(after_step));
  }
  CHECK_FALSE(bf16_weight(mul(w, w)).same_storage(bf16_weight(mul(w, w))));  // not a leaf: a fresh copy
  {
    const Bf16MatmulGuard nested(false);
  }
  CHECK_FALSE(bf16_weight(w).same_storage(after_step));  // leaving a guard forgot the copies
}

TEST_CASE("on the CPU the products' input dtype stays float32, and a bfloat16 product input is refused") {
  Generator gen(8);
  const Tensor x = uniform({4, 6}, -1, 1, gen);
  const Bf16MatmulGuard on;
  CHECK(product_input_dtype(x) == DType::F32);  // the CPU multiplies float32: the producers stay float32
  CHECK(rms_norm(x, 1e-6, product_input_dtype(x)).dtype() == DType::F32);
  CHECK_THROWS_WITH_AS(matmul(x.to_dtype(DType::BF16), uniform({6, 3}, -1, 1, gen)),
                       doctest::Contains("needs a float32 partner on its device under bf16 mixed precision"), Error);
  CHECK_THROWS_WITH_AS(rms_norm(x.to_dtype(DType::F64), 1e-6, DType::BF16),
                       doctest::Contains("rms_norm: cannot write bfloat16 from a float64 input"), Error);
}

TEST_CASE("cross_entropy_backward writes a bfloat16 G as the float32 one rounded") {
  Generator gen(14);
  const int64_t rows = 9, vocab = 41;
  std::vector<int32_t> ids = random_token_ids(rows, vocab, gen);
  ids[4] = -1;  // an ignored row: zeros
  const Tensor logits = uniform({rows, vocab}, -4, 4, gen), targets = from_ints(ids, {rows});
  Tensor losses = empty({rows}), lse = empty({rows});
  Tensor g32 = empty({rows, vocab}), g16 = empty({rows, vocab}, DType::BF16);
  Backend& cpu = backend(Device::CPU);
  cpu.cross_entropy_forward(logits, targets, losses, lse);
  const Tensor grad_rows = uniform({rows}, 0, 1, gen);
  cpu.cross_entropy_backward(logits, targets, lse, grad_rows, g32);
  cpu.cross_entropy_backward(logits, targets, lse, grad_rows, g16);
  check_close(g16, g32.to_dtype(DType::BF16).to_double_vector(), 0);
}

TEST_CASE("rms_norm and swiglu write bfloat16 as the float32 result rounded, and differentiate as float32") {
  Generator gen(10);
  Tensor x = random_leaf({5, 37}, gen, -2, 2, DType::F32), gate = random_leaf({5, 37}, gen, -4, 4, DType::F32);
  const Tensor upstream = uniform({5, 37}, -1, 1, gen).to_dtype(DType::BF16);  // a bfloat16 output's seed
  for (const bool is_norm : {true, false}) {
    INFO(std::string(is_norm ? "rms_norm" : "swiglu"));
    const auto op = [&](std::optional<DType> out) { return is_norm ? rms_norm(x, 1e-6, out) : swiglu(gate, x, out); };
    const auto input_grads = [&](const Tensor& y, const Tensor& seed) {
      x.zero_grad();
      gate.zero_grad();
      y.backward(seed);
      return std::vector<Tensor>{x.grad(), is_norm ? Tensor() : gate.grad()};
    };
    const Tensor in_f32 = op(std::nullopt), in_bf16 = op(DType::BF16);
    CHECK(in_bf16.dtype() == DType::BF16);
    check_close(in_bf16, in_f32.to_dtype(DType::BF16).to_double_vector(), 0);  // the cast's rounding exactly
    const std::vector<Tensor> g32 = input_grads(in_f32, upstream.to_dtype(DType::F32)),
                              g16 = input_grads(in_bf16, upstream);
    for (size_t i = 0; i < g32.size(); ++i) {
      if (!g32[i].defined()) continue;
      CHECK(g16[i].dtype() == DType::F32);
      check_close(g16[i], g32[i].to_double_vector(), 0);
    }
  }
}

TEST_SUITE("cuda bf16 mixed precision" * needs_cuda()) {
  TEST_CASE("cuda bf16 producers before a product give exactly the float32 producer's values cast by the product") {
    Generator gen(12);
    const int64_t rows = 67, d = 44, f = 37;  // awkward sizes; d a multiple of 4 runs the vector paths
    Tensor x = uniform({rows, d}, -2, 2, gen, DType::F32, Device::CUDA),
           gate = uniform({rows, d}, -4, 4, gen, DType::F32, Device::CUDA),
           w = uniform({f, d}, -1, 1, gen, DType::F32, Device::CUDA);
    for (Tensor* t : {&x, &gate, &w}) t->set_requires_grad(true);
    const Tensor weighting = uniform({rows, f}, -1, 1, gen, DType::F32, Device::CUDA);
    for (const bool is_norm : {true, false}) {
      INFO(std::string(is_norm ? "rms_norm" : "swiglu"));
      std::vector<double> result[2][3];  // [float32 producer, bf16 producer][output, dx, dw]
      for (int bf16_producer = 0; bf16_producer < 2; ++bf16_producer) {
        const Bf16MatmulGuard guard;
        for (Tensor* t : {&x, &gate, &w}) t->zero_grad();
        const std::optional<DType> out = bf16_producer ? std::optional<DType>(product_input_dtype(x)) : std::nullopt;
        const Tensor y = is_norm ? rms_norm(x, 1e-6, out) : swiglu(gate, x, out);
        CHECK(y.dtype() == (bf16_producer ? DType::BF16 : DType::F32));
        const Tensor c = matmul(y, w, false, true);
        sum(mul(c, weighting)).backward();
        CHECK(x.grad().dtype() == DType::F32);
        result[bf16_producer][0] = c.to_double_vector();
        result[bf16_producer][1] = x.grad().to_double_vector();
        result[bf16_producer][2] = w.grad().to_double_vector();
      }
      for (int i = 0; i < 3; ++i) CHECK(result[1][i] == result[0][i]);
    }
  }

  TEST_CASE("cuda: the fused head and loss take a bfloat16 input as the float32 one") {
    Generator gen(13);
    Tensor x = uniform({3, 11, 24}, -2, 2, gen, DType::F32, Device::CUDA),
           w = uniform({97, 24}, -1, 1, gen, DType::F32, Device::CUDA);
    x.set_requires_grad(true);
    w.set_requires_grad(true);
    const Tensor targets = random_token_tensor(3, 11, 97, gen).to_device(Device::CUDA);
    std::vector<double> result[2][3];
    for (int bf16_input = 0; bf16_input < 2; ++bf16_input) {
      const Bf16MatmulGuard guard;
      x.zero_grad();
      w.zero_grad();
      const Tensor normed = rms_norm(x, 1e-6, bf16_input ? std::optional<DType>(DType::BF16) : std::nullopt);
      const Tensor loss = linear_cross_entropy(normed, w, targets, 8);
      loss.backward();
      result[bf16_input][0] = loss.to_double_vector();
      result[bf16_input][1] = x.grad().to_double_vector();
      result[bf16_input][2] = w.grad().to_double_vector();
    }
    for (int i = 0; i < 3; ++i) CHECK(result[1][i] == result[0][i]);
  }


  TEST_CASE("bf16 matmul and both float32 gradients match float32 (relative 2e-2)") {
    struct Case {
      Shape a, b;
      bool ta, tb;
    };
    const Case cases[] = {
        {{37, 53}, {53, 29}, false, false},          // plain 2-D
        {{3, 53, 37}, {3, 29, 53}, true, true},      // batched, both transposed
        {{3, 37, 53}, {3, 53, 29}, false, false},    // batched
        {{2, 3, 37, 53}, {29, 53}, false, true},     // batched input, shared 2-D weight (Linear)
    };
    for (const Case& k : cases) {
      INFO("a " << shape_str(k.a) << (k.ta ? "ᵀ" : "") << " · b " << shape_str(k.b) << (k.tb ? "ᵀ" : ""));
      Generator gen(7);
      Tensor a = uniform(k.a, -1, 1, gen, DType::F32, Device::CUDA), b = uniform(k.b, -1, 1, gen, DType::F32, Device::CUDA);
      a.set_requires_grad(true);
      b.set_requires_grad(true);
      const Product fp32 = weighted_product(a, b, k.ta, k.tb);
      Product bf16;
      {
        const Bf16MatmulGuard guard;
        bf16 = weighted_product(a, b, k.ta, k.tb);
      }
      CHECK(bf16.c.dtype() == DType::F32);
      CHECK(bf16.grad_a.dtype() == DType::F32);
      CHECK(bf16.grad_b.dtype() == DType::F32);
      CHECK(bf16.grad_a.shape() == a.shape());
      CHECK(bf16.grad_b.shape() == b.shape());
      const double errors[] = {scaled_error(bf16.c, fp32.c), scaled_error(bf16.grad_a, fp32.grad_a),
                               scaled_error(bf16.grad_b, fp32.grad_b)};
      for (const double e : errors) {
        CHECK(e <= 2e-2);
        CHECK(e > 0);  // bfloat16 rounding did happen: the guard really switched the GPU path
      }
    }
  }

  TEST_CASE("the T6 loss and its gradient norm under bf16 are within 2% of float32") {
    const ModelConfig c = tiny_config();
    T6Model model(c);
    Generator gen(5);
    model.fill_uniform(gen, 0.3);
    model.to(Device::CUDA);
    const Tensor idx = random_token_tensor(3, 37, c.vocab_size, gen), tgt = random_token_tensor(3, 37, c.vocab_size, gen);
    double loss[2], grad_norm[2];
    for (int run = 0; run < 2; ++run) {
      const Bf16MatmulGuard guard(run == 1);
      model.zero_grad();
      const Tensor l = model.forward(idx, tgt).loss;
      loss[run] = l.item();
      l.backward();
      std::vector<Tensor> grads;
      for (const Tensor& p : model.parameters()) grads.push_back(p.grad());
      grad_norm[run] = std::sqrt(backend(Device::CUDA).sum_of_squares(grads));
    }
    CHECK(loss[1] != loss[0]);
    CHECK(std::fabs(loss[1] - loss[0]) <= 2e-2 * std::fabs(loss[0]));
    CHECK(std::fabs(grad_norm[1] - grad_norm[0]) <= 2e-2 * grad_norm[0]);
  }

  TEST_CASE("a 20-step bf16 training run tracks the float32 run (relative 2e-2)") {
    const std::vector<double> fp32 = training_losses(false), bf16 = training_losses(true);
    CHECK(fp32.back() < fp32.front());  // it learns, so the comparison is about a moving target
    for (size_t step = 0; step < fp32.size(); ++step) {
      INFO("step " << step);
      CHECK(std::fabs(bf16[step] - fp32[step]) <= 2e-2 * std::fabs(fp32[step]));
    }
  }
}
