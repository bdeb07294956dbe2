// The CUDA backend's hot paths without waits for the GPU: uploads through pinned staging memory (the
// caller's buffer is free at once), ids out of range reported at the next synchronization instead of
// read back first, the cross-entropy mean's count kept on the device, and AdamW's table of slots kept
// between steps. Skipped (reported as skipped) when no CUDA GPU is present.
#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/mixed_precision.h"
#include "core/backend.h"
#include "core/random.h"
#include "tests/test_helpers.h"

using namespace t6;
using t6::testing::max_scaled_error;

namespace {

Backend& gpu() { return backend(Device::CUDA); }

// How every error found by a CUDA kernel ends: why it surfaces where it does.
const std::string kFoundOnGpu = " (found by a CUDA kernel, and reported at the first synchronization after it)";

// The value a copy test writes at element j of copy i: distinct, and exact in float32 (below 2^24).
float pattern(int64_t i, int64_t j) { return static_cast<float>(i * 10007 + j); }

bool holds_pattern(const Tensor& t, int64_t i) {
  const std::vector<float> got = t.to_vector<float>();
  for (size_t j = 0; j < got.size(); ++j)
    if (got[j] != pattern(i, static_cast<int64_t>(j))) return false;
  return true;
}

}  // namespace

TEST_SUITE("cuda without waits" * t6::testing::needs_cuda()) {

TEST_CASE("cuda copy_from_host: the host buffer may be overwritten or freed as soon as the call returns") {
  // Products queued first keep the GPU busy, so the copies below wait in the stream behind them while
  // their host buffers are overwritten, freed and handed out again.
  Generator gen(21);
  const Tensor a = uniform({2048, 2048}, -1.0, 1.0, gen).to_device(Device::CUDA);
  Tensor busy = a;
  for (int i = 0; i < 8; ++i) busy = matmul(busy, a);

  // 300 copies of 1 element up to several staging chunks (1 MiB): the staging ring goes round many times.
  std::vector<Tensor> on_gpu;
  for (int64_t i = 0; i < 300; ++i) {
    const int64_t n = i % 50 == 7 ? (int64_t{3} << 20) / 4 + i : 1 + (i * 997) % 5000;
    auto host = std::make_unique<std::vector<float>>(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) (*host)[j] = pattern(i, j);
    Tensor t = empty({n}, DType::F32, Device::CUDA);
    gpu().copy_from_host(t.raw_data(), host->data(), static_cast<size_t>(n) * sizeof(float));
    std::fill(host->begin(), host->end(), -1.0f);
    host.reset();
    on_gpu.push_back(t);
  }
  // The same through tensors: from_vector's host tensor is gone when it returns, and `values` is
  // rewritten for the next one.
  std::vector<double> values(1000);
  std::vector<Tensor> from_vectors;
  for (int64_t i = 0; i < 40; ++i) {
    for (size_t j = 0; j < values.size(); ++j) values[j] = pattern(i, static_cast<int64_t>(j));
    from_vectors.push_back(from_vector(values, {1000}, DType::F32, Device::CUDA));
  }

  for (size_t i = 0; i < on_gpu.size(); ++i) {
    CAPTURE(i);
    CHECK(holds_pattern(on_gpu[i], static_cast<int64_t>(i)));
  }
  for (size_t i = 0; i < from_vectors.size(); ++i) {
    CAPTURE(i);
    CHECK(holds_pattern(from_vectors[i], static_cast<int64_t>(i)));
  }
}

TEST_CASE("cuda embedding: an id out of range is a clear error at the next synchronization, then forgotten") {
  Generator gen(22);
  const Tensor weight = uniform({50, 8}, -1.0, 1.0, gen).to_device(Device::CUDA);
  const Tensor out = embedding(weight, from_ints({1, 70, 2}, {3}, Device::CUDA));  // no wait: ids stay on the GPU
  CHECK_THROWS_WITH_AS(gpu().synchronize(),
                       ("embedding: token id 70 at position 1 is outside [0, 50); ids must be below vocab_size: check "
                        "that the tokenizer and the data match the model's vocab_size" + kFoundOnGpu).c_str(),
                       Error);
  // Reported once: the backend goes on, with the bad id's row zero and the others looked up.
  CHECK_NOTHROW(gpu().synchronize());
  const std::vector<double> w = weight.to_double_vector(), got = out.to_double_vector();
  for (int64_t j = 0; j < 8; ++j) {
    CHECK(got[j] == w[1 * 8 + j]);
    CHECK(got[8 + j] == 0.0);
    CHECK(got[16 + j] == w[2 * 8 + j]);
  }
  // Several bad ids in one launch: one error (whichever the GPU met first), then none.
  const Tensor many = embedding(weight, from_ints({-5, 60, 3, 80}, {4}, Device::CUDA));
  CHECK_THROWS_WITH_AS(many.to_double_vector(), doctest::Contains("is outside [0, 50); ids must be below vocab_size"),
                       Error);
  CHECK(many.to_double_vector()[2 * 8] == w[3 * 8]);
  // The backward kernel drops a bad id's gradient and reports it the same way.
  Tensor gweight = zeros({50, 8}, DType::F32, Device::CUDA);
  gpu().embedding_backward(from_ints({4, 50}, {2}, Device::CUDA), ones({2, 8}, DType::F32, Device::CUDA), gweight);
  CHECK_THROWS_WITH_AS(gpu().synchronize(), doctest::Contains("token id 50 at position 1 is outside [0, 50)"), Error);
  const std::vector<double> g = gweight.to_double_vector();
  CHECK(std::count(g.begin(), g.end(), 1.0) == 8);  // row 4's, and nothing else
  CHECK(std::count(g.begin(), g.end(), 0.0) == 49 * 8);
}

TEST_CASE("cuda cross_entropy: a target out of range is a clear error when the loss is read, then forgotten") {
  Generator gen(23);
  const Tensor logits = uniform({4, 10}, -1.0, 1.0, gen);
  const Tensor loss = cross_entropy(logits.to_device(Device::CUDA), from_ints({3, -1, 12, 9}, {4}, Device::CUDA));
  CHECK_THROWS_WITH_AS(loss.item(),
                       ("cross_entropy: target id 12 at position 2 lies outside [-1, 10); every target must be a token "
                        "id below vocab_size or -1 (ignored): check that the tokenizer and the data match the model's "
                        "vocab_size" + kFoundOnGpu).c_str(),
                       Error);
  // The bad row counted as ignored: read again, the loss is the mean over the two good targets.
  const double good_only = cross_entropy(logits, from_ints({3, -1, -1, 9}, {4})).item();
  CHECK(loss.item() == doctest::Approx(good_only).epsilon(1e-5));
}

TEST_CASE("cuda cross_entropy op with ignored targets equals the cpu, gradient included") {
  Generator gen(24);
  const int64_t B = 3, T = 37, V = 301;
  std::vector<int32_t> ids = testing::random_token_ids(B * T, V, gen);
  for (size_t i = 0; i < ids.size(); i += 5) ids[i] = -1;
  const Tensor targets = from_ints(ids, {B, T});
  Tensor cpu_logits = uniform({B, T, V}, -3.0, 3.0, gen);
  Tensor gpu_logits = cpu_logits.to_device(Device::CUDA);
  cpu_logits.set_requires_grad();
  gpu_logits.set_requires_grad();
  const Tensor cpu_loss = cross_entropy(cpu_logits, targets);
  const Tensor gpu_loss = cross_entropy(gpu_logits, targets.to_device(Device::CUDA));
  CHECK(gpu_loss.item() == doctest::Approx(cpu_loss.item()).epsilon(1e-5));
  cpu_loss.backward();
  gpu_loss.backward();
  CHECK(max_scaled_error(gpu_logits.grad().to_double_vector(), cpu_logits.grad().to_double_vector()) <= 1e-6);

  // every target ignored: loss 0 and gradient 0, as on the CPU
  gpu_logits.zero_grad();
  const Tensor none = cross_entropy(gpu_logits, from_ints(std::vector<int32_t>(B * T, -1), {B, T}, Device::CUDA));
  CHECK(none.item() == 0.0);
  none.backward();
  const std::vector<double> g = gpu_logits.grad().to_double_vector();
  CHECK(std::all_of(g.begin(), g.end(), [](double x) { return x == 0.0; }));
}

TEST_CASE("cuda linear_cross_entropy equals the cpu, and under bf16 the composite head and loss") {
  Generator gen(25);
  const int64_t B = 3, T = 37, d = 40, V = 301;  // 111 rows in chunks of 16: an uneven last chunk
  std::vector<int32_t> ids = testing::random_token_ids(B * T, V, gen);
  for (size_t i = 0; i < ids.size(); i += 5) ids[i] = -1;
  const Tensor targets = from_ints(ids, {B, T}), gpu_targets = targets.to_device(Device::CUDA);
  Tensor cpu_x = uniform({B, T, d}, -1.0, 1.0, gen), cpu_w = uniform({V, d}, -1.0, 1.0, gen);
  Tensor gpu_x = cpu_x.to_device(Device::CUDA), gpu_w = cpu_w.to_device(Device::CUDA);
  for (Tensor* t : {&cpu_x, &cpu_w, &gpu_x, &gpu_w}) t->set_requires_grad();
  const Tensor cpu_loss = linear_cross_entropy(cpu_x, cpu_w, targets, 16);
  const Tensor gpu_loss = linear_cross_entropy(gpu_x, gpu_w, gpu_targets, 16);
  CHECK(gpu_loss.item() == doctest::Approx(cpu_loss.item()).epsilon(1e-5));
  cpu_loss.backward();
  gpu_loss.backward();
  CHECK(max_scaled_error(gpu_x.grad().to_double_vector(), cpu_x.grad().to_double_vector()) <= 1e-5);
  CHECK(max_scaled_error(gpu_w.grad().to_double_vector(), cpu_w.grad().to_double_vector()) <= 1e-5);

  // mixed precision: the same bfloat16 products as matmul's, so the composite's loss and gradients. The
  // composite rounds G/count to bfloat16 where the fused op rounds G: the same when count (here 128
  // rows, none ignored) is a power of two, as it is in training.
  Tensor x = uniform({2, 64, d}, -1.0, 1.0, gen).to_device(Device::CUDA).set_requires_grad();
  const Tensor all_counted = testing::random_token_tensor(2, 64, V, gen).to_device(Device::CUDA);
  Bf16MatmulGuard bf16;
  gpu_w.zero_grad();
  const Tensor fused = linear_cross_entropy(x, gpu_w, all_counted, 48);
  fused.backward();
  const std::vector<double> fused_gx = x.grad().to_double_vector(), fused_gw = gpu_w.grad().to_double_vector();
  x.zero_grad(), gpu_w.zero_grad();
  const Tensor composite = cross_entropy(matmul(x, gpu_w, false, true), all_counted);
  composite.backward();
  CHECK(fused.item() == doctest::Approx(composite.item()).epsilon(1e-6));
  CHECK(max_scaled_error(fused_gx, x.grad().to_double_vector()) <= 1e-5);
  CHECK(max_scaled_error(fused_gw, gpu_w.grad().to_double_vector()) <= 1e-5);
}

TEST_CASE("cuda adamw_step keeps its table between steps and uploads it again when the tensors change") {
  Generator gen(25);
  using State = std::vector<Tensor>;  // four tensors per slot: param, grad, exp_avg, exp_avg_sq
  const auto make_state = [&](const std::vector<Shape>& shapes) {
    State state;
    for (const Shape& s : shapes) {
      state.push_back(uniform(s, -1.0, 1.0, gen));
      state.push_back(uniform(s, -1.0, 1.0, gen));
      state.push_back(uniform(s, -0.1, 0.1, gen));
      state.push_back(uniform(s, 0.0, 0.01, gen));
    }
    return state;
  };
  const auto step = [](State& state, int64_t t) {
    std::vector<AdamWSlot> slots;
    for (size_t i = 0; i < state.size(); i += 4) slots.push_back({state[i], state[i + 1], state[i + 2], state[i + 3]});
    backend_of(state[0]).adamw_step(slots, AdamWHyper{1e-3, 0.9, 0.95, 1e-8, 0.1, t, 1.0});
  };
  const auto to_gpu = [](const State& state) {
    State out;
    for (const Tensor& t : state) out.push_back(t.to_device(Device::CUDA));
    return out;
  };
  // a and b: tables of the same size that differ only in their pointers; c: another size
  State a = make_state({{7}, {129, 33}}), b = make_state({{7}, {129, 33}}), c = make_state({{5000}});
  State ga = to_gpu(a), gb = to_gpu(b), gc = to_gpu(c);
  const std::vector<std::pair<State*, State*>> pairs = {{&a, &ga}, {&b, &gb}, {&c, &gc}};
  int64_t t = 0;
  for (size_t which : {0, 0, 1, 2, 0}) {  // a twice (the table kept), then b, c and a again (each uploaded)
    ++t;
    step(*pairs[which].first, t);
    step(*pairs[which].second, t);
  }
  for (auto [cpu_state, gpu_state] : pairs) {
    for (size_t i = 0; i < cpu_state->size(); ++i) {
      CAPTURE(i);
      CHECK(max_scaled_error((*gpu_state)[i].to_double_vector(), (*cpu_state)[i].to_double_vector()) <= 1e-6);
    }
  }
}

}  // TEST_SUITE
