// The whole T6 model on the GPU against the CPU: loss and every parameter gradient, and a 20-step
// training run; and float64 gradient checks of the moves to and from the GPU. Skipped (reported as
// skipped) when no CUDA GPU is present.
#include <doctest/doctest.h>

#include <cmath>

#include "core/backend.h"
#include "nn/t6_model.h"
#include "test_helpers.h"
#include "train/adamw.h"
#include "train/lr_schedule.h"

using namespace t6;
using namespace t6::testing;

namespace {

ModelConfig parity_config(const std::string& attention) {
  ModelConfig c;
  c.vocab_size = 97, c.n_layer = 2, c.n_embd = 48, c.head_dim = 16, c.q_rank = 3, c.rank = 2, c.block_size = 37;
  c.attention = attention_kind_names().parse(attention, "attention");
  c.n_head = attention == "gqa" ? 6 : 3;
  c.n_kv_head = attention == "gqa" ? 2 : 0;
  return c;
}

}  // namespace

TEST_SUITE("cuda model" * needs_cuda()) {
  TEST_CASE("to() and cast() through the GPU: float64 gradient checks, a strided input, a random upstream") {
    // The move's backward moves the gradient back (and cast's casts it back): a transposed input and a
    // random upstream would show a gradient that comes back permuted, negated or on the wrong device.
    Generator gen(9);
    Tensor x = random_leaf({3, 4}, gen);
    const Tensor w = uniform({4, 3}, -1, 1, gen, DType::F64).to_device(Device::CUDA);
    check_gradients(
        [&](const std::vector<Tensor>& in) {
          return to(mul(to(transpose(in[0], 0, 1), Device::CUDA), w), Device::CPU);  // (4,3), back on the CPU
        },
        {x});
    GradcheckOptions coarse;
    coarse.eps = 0.125;  // float32 rounding on the way, as in tests/test_ops_shape.cpp's check of cast
    const GradcheckResult r = gradcheck(
        [](const std::vector<Tensor>& in) {
          const Tensor on_gpu = to(transpose(in[0], 0, 1), Device::CUDA);
          return to(cast(cast(on_gpu, DType::F32), DType::F64), Device::CPU);
        },
        {x}, coarse);
    INFO(r.summary());
    CHECK(r.passed);
    CHECK(r.derivatives_checked == 12);
  }

  TEST_CASE("GPU fp32 loss and every parameter gradient match the CPU (relative 1e-4)") {
    for (const std::string& variant : attention_kind_names().names()) {
      INFO("attention " << variant);
      const ModelConfig c = parity_config(variant);
      T6Model cpu(c), gpu(c);
      Generator gen(5);
      cpu.fill_uniform(gen, 0.3);
      {
        NoGradGuard no_grad;
        const auto a = cpu.named_parameters();
        auto b = gpu.named_parameters();
        for (size_t i = 0; i < a.size(); ++i) b[i].second.copy_(a[i].second);
      }
      gpu.to(Device::CUDA);
      const Tensor idx = random_token_tensor(3, 37, c.vocab_size, gen), tgt = random_token_tensor(3, 37, c.vocab_size, gen);
      const Tensor cpu_loss = cpu.forward(idx, tgt).loss, gpu_loss = gpu.forward(idx, tgt).loss;
      CHECK(std::fabs(gpu_loss.item() - cpu_loss.item()) <= 1e-4 * std::fabs(cpu_loss.item()));
      cpu_loss.backward();
      gpu_loss.backward();
      const auto a = cpu.named_parameters(), b = gpu.named_parameters();
      for (size_t i = 0; i < a.size(); ++i) {
        INFO(a[i].first);
        const std::vector<double> ga = a[i].second.grad().to_double_vector(), gb = b[i].second.grad().to_double_vector();
        double largest = 0, diff = 0;
        for (size_t j = 0; j < ga.size(); ++j) {
          largest = std::max(largest, std::fabs(ga[j]));
          diff = std::max(diff, std::fabs(ga[j] - gb[j]));
        }
        CHECK(diff <= 1e-4 * std::max(largest, 1e-6));  // relative to the gradient's scale
      }
    }
  }

  TEST_CASE("a 20-step fp32 training run on the GPU tracks the CPU run (relative 1e-4)") {
    const ModelConfig c = parity_config("tpa");
    OptimConfig o;
    o.lr = 3e-3, o.warmup_steps = 5, o.decay_steps = 20;
    std::vector<double> losses[2];
    for (int run = 0; run < 2; ++run) {
      T6Model model(c);
      model.to(run == 0 ? Device::CPU : Device::CUDA);
      AdamW optimizer(model.parameters(), o);
      Generator gen(11);
      for (int step = 0; step < 20; ++step) {
        const Tensor idx = random_token_tensor(4, 32, c.vocab_size, gen);
        model.zero_grad();
        const Tensor loss = model.forward(idx, idx).loss;
        losses[run].push_back(loss.item());
        loss.backward();
        optimizer.step(learning_rate(o, step));
      }
    }
    for (int step = 0; step < 20; ++step) {
      INFO("step " << step);
      CHECK(std::fabs(losses[1][step] - losses[0][step]) <= 1e-4 * std::fabs(losses[0][step]));
    }
  }
}
