// The fused neural-network ops (softmax, log_softmax, cross-entropy, embedding, rms_norm, rope,
// swiglu, tpa_product):
// each against a plain loop reference or a composite of simpler ops, plus float64 gradient checks.
#include <doctest/doctest.h>

#include "test_helpers.h"

using namespace t6;
using namespace t6::testing;

namespace {

// softmax(scale·x) of each row of [rows, tk]; with causal, row r is query (r % tq) of its block and
// may see keys j ≤ (r % tq) + (tk − tq).
std::vector<double> softmax_ref(const std::vector<double>& x, int64_t rows, int64_t tk, double s, bool causal,
                                int64_t tq) {
  std::vector<double> y(x.size(), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t visible = causal ? (r % tq) + (tk - tq) + 1 : tk;
    double mx = -INFINITY, z = 0;
    for (int64_t j = 0; j < visible; ++j) mx = std::max(mx, s * x[r * tk + j]);
    for (int64_t j = 0; j < visible; ++j) z += std::exp(s * x[r * tk + j] - mx);
    for (int64_t j = 0; j < visible; ++j) y[r * tk + j] = std::exp(s * x[r * tk + j] - mx) / z;
  }
  return y;
}

}  // namespace

TEST_CASE("softmax: plain, scaled, causal (square and with fewer queries than keys)") {
  Generator gen(41);
  Tensor x = random_leaf({2, 4, 6}, gen, -2, 2);
  const std::vector<double> v = x.to_double_vector();
  check_close(softmax(x), softmax_ref(v, 8, 6, 1.0, false, 1), 1e-14);
  check_close(softmax(x, 0.3), softmax_ref(v, 8, 6, 0.3, false, 1), 1e-14);
  check_close(softmax(x, 0.3, true), softmax_ref(v, 8, 6, 0.3, true, 4), 1e-14);
  check_close(softmax(x.to_dtype(DType::F32), 0.3, true), softmax_ref(v, 8, 6, 0.3, true, 4), 1e-6);
  Tensor sq = random_leaf({3, 5, 5}, gen, -2, 2);
  const std::vector<double> y = softmax(sq, 1.0, true).to_double_vector();
  CHECK(y[1] == 0.0);  // query 0 cannot see key 1: exactly zero
  check_close(softmax(sq, 1.0, true), softmax_ref(sq.to_double_vector(), 15, 5, 1.0, true, 5), 1e-14);
  // random upstream gradients: the Σ_j gy_j y_j term matters
  check_gradients([](const std::vector<Tensor>& in) { return softmax(in[0]); }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return softmax(in[0], 0.7, true); }, {x});
  check_gradients([](const std::vector<Tensor>& in) { return softmax(in[0], 1.3, true); }, {sq});
  check_gradients([](const std::vector<Tensor>& in) { return softmax(transpose(in[0], 1, 2), 1.0, true); }, {sq});
  // large logits do not overflow
  for (double p : softmax(from_vector({1000, 0, -1000}, {1, 3})).to_double_vector()) CHECK(std::isfinite(p));
  CHECK_THROWS_WITH_AS(softmax(zeros({4, 3}), 1.0, true), doctest::Contains("more queries (4) than keys (3)"), Error);
  CHECK_THROWS_WITH_AS(softmax(zeros({3}), 1.0, true), doctest::Contains("causal mask needs [..., Tq, Tk]"), Error);
}

TEST_CASE("log_softmax equals the composite x - log(sum(exp(x)))") {
  Generator gen(42);
  Tensor x = random_leaf({3, 7}, gen, -3, 3);
  // (binary ops broadcast a trailing operand, so the per-row term is subtracted in transposed layout)
  Tensor composite = transpose(sub(transpose(x, 0, 1), log(sum(exp(x), 1))), 0, 1);
  check_close(log_softmax(x), composite.to_double_vector(), 1e-14);
  const std::vector<double> v = x.to_double_vector();
  std::vector<double> expected;
  for (int r = 0; r < 3; ++r) {
    double z = 0;
    for (int j = 0; j < 7; ++j) z += std::exp(v[r * 7 + j]);
    for (int j = 0; j < 7; ++j) expected.push_back(v[r * 7 + j] - std::log(z));
  }
  check_close(log_softmax(x), expected, 1e-14);
  check_close(log_softmax(x.to_dtype(DType::F32)), expected, 1e-6);
  check_gradients([](const std::vector<Tensor>& in) { return log_softmax(in[0]); }, {x});
}

TEST_CASE("cross_entropy with ignore index equals the mean of −log_softmax at the targets") {
  Generator gen(43);
  Tensor logits = random_leaf({2, 3, 5}, gen, -2, 2);  // (B,T,V)
  Tensor targets = from_ints({4, -1, 0, 2, 2, -1}, {2, 3});
  const std::vector<double> lv = log_softmax(logits).to_double_vector();
  const std::vector<int32_t> t = targets.to_vector<int32_t>();
  double total = 0;
  int counted = 0;
  for (int i = 0; i < 6; ++i)
    if (t[i] != -1) total -= lv[i * 5 + t[i]], ++counted;
  CHECK(cross_entropy(logits, targets).item() == doctest::Approx(total / counted).epsilon(1e-13));
  CHECK(cross_entropy(logits.to_dtype(DType::F32), targets).item() == doctest::Approx(total / counted).epsilon(1e-6));
  check_gradients([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], targets); }, {logits});
  // composite reference for the gradient too: −mean of log_softmax picked by a one-hot mask
  std::vector<double> mask(30, 0.0);
  for (int i = 0; i < 6; ++i)
    if (t[i] != -1) mask[i * 5 + t[i]] = 1.0 / counted;
  Tensor one_hot = from_vector(mask, {2, 3, 5}, DType::F64);
  Tensor composite = neg(sum(mul(log_softmax(logits), one_hot)));
  CHECK(composite.item() == doctest::Approx(total / counted).epsilon(1e-13));
  Tensor fused_loss = cross_entropy(logits, targets);
  fused_loss.backward();
  const std::vector<double> fused_grad = logits.grad().to_double_vector();
  logits.zero_grad();
  composite.backward();
  CHECK(max_scaled_error(fused_grad, logits.grad().to_double_vector()) < 1e-14);
  logits.zero_grad();
  // every target ignored: loss 0, gradient 0
  Tensor all_ignored = from_ints({-1, -1, -1, -1, -1, -1}, {2, 3});
  CHECK(cross_entropy(logits, all_ignored).item() == 0.0);
  cross_entropy(logits, all_ignored).backward();
  REQUIRE(logits.grad().defined());
  for (double g : logits.grad().to_double_vector()) CHECK(g == 0.0);
  logits.zero_grad();
  CHECK_THROWS_WITH_AS(cross_entropy(logits, from_ints({5, 0, 0, 0, 0, 0}, {2, 3})),
                       "cross_entropy: 1 target ids lie outside [-1, 5); every target must be a token id below "
                       "vocab_size or -1 (ignored)",
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, from_ints({1, 2}, {2})), doctest::Contains("need targets of shape"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, zeros({2, 3})), doctest::Contains("must be an int32 tensor"), Error);
}

TEST_CASE("linear_cross_entropy equals cross_entropy of x · Wᵀ over any chunking, gradients included") {
  Generator gen(44);
  const int64_t B = 2, T = 7, d = 5, V = 11;
  Tensor x = random_leaf({B, T, d}, gen, -1, 1);
  Tensor w = random_leaf({V, d}, gen, -1, 1);
  std::vector<int32_t> t = random_token_ids(B * T, V, gen);
  t[0] = t[5] = t[13] = -1;  // ignored, the last row among them
  const Tensor targets = from_ints(t, {B, T});
  // plain reference: logits row by row, then the mean of lse − logit at the target over counted rows
  const std::vector<double> xv = x.to_double_vector(), wv = w.to_double_vector();
  double total = 0;
  int counted = 0;
  for (int64_t r = 0; r < B * T; ++r) {
    std::vector<double> z(V, 0.0);
    for (int64_t v = 0; v < V; ++v)
      for (int64_t k = 0; k < d; ++k) z[v] += xv[r * d + k] * wv[v * d + k];
    double mx = -INFINITY, sum_exp = 0;
    for (double zv : z) mx = std::max(mx, zv);
    for (double zv : z) sum_exp += std::exp(zv - mx);
    if (t[r] != -1) total += mx + std::log(sum_exp) - z[t[r]], ++counted;
  }
  const Tensor composite = cross_entropy(matmul(x, w, false, true), targets);
  for (int64_t chunk : {0, 1, 3, 14, 100}) {  // automatic, one row, uneven, exact, more than all
    CAPTURE(chunk);
    CHECK(linear_cross_entropy(x, w, targets, chunk).item() == doctest::Approx(total / counted).epsilon(1e-13));
    check_gradients([&](const std::vector<Tensor>& in) { return linear_cross_entropy(in[0], in[1], targets, chunk); },
                    {x, w});
  }
  CHECK(composite.item() == doctest::Approx(total / counted).epsilon(1e-13));
  // float32, and the gradient of x alone (a frozen W), equal the composite's
  Tensor x32 = x.to_dtype(DType::F32).set_requires_grad(), w32 = w.to_dtype(DType::F32);
  const Tensor fused32 = linear_cross_entropy(x32, w32, targets, 4);
  CHECK(fused32.item() == doctest::Approx(total / counted).epsilon(1e-6));
  fused32.backward();
  const Tensor g_fused = x32.grad();
  x32.zero_grad();
  cross_entropy(matmul(x32, w32, false, true), targets).backward();
  check_close(g_fused, x32.grad().to_double_vector(), 1e-6);
  // every target ignored: loss 0 and zero gradients, not 0/0
  const Tensor none = linear_cross_entropy(x, w, from_ints(std::vector<int32_t>(B * T, -1), {B, T}), 3);
  CHECK(none.item() == 0.0);
  // wrong shapes are named
  CHECK_THROWS_WITH_AS(linear_cross_entropy(x, random_leaf({V, d + 1}, gen, -1, 1), targets),
                       doctest::Contains("need x [..., d] and weight [V, d]"), Error);
}

TEST_CASE("embedding gathers rows; repeated ids accumulate in the gradient") {
  Generator gen(44);
  Tensor w = random_leaf({5, 3}, gen);
  Tensor ids = from_ints({1, 4, 1, 0}, {2, 2});
  Tensor out = embedding(w, ids);
  CHECK(out.shape() == Shape{2, 2, 3});
  const std::vector<double> wv = w.to_double_vector();
  std::vector<double> expected;
  for (int id : {1, 4, 1, 0})
    for (int j = 0; j < 3; ++j) expected.push_back(wv[id * 3 + j]);
  check_close(out, expected, 0);
  sum(out).backward();
  check_close(w.grad(), {1, 1, 1, 2, 2, 2, 0, 0, 0, 0, 0, 0, 1, 1, 1}, 0);  // id 1 twice, ids 2-3 never
  check_gradients([&](const std::vector<Tensor>& in) { return embedding(in[0], ids); }, {w});
  CHECK_THROWS_WITH_AS(embedding(w, from_ints({0, 5})),
                       "embedding: token id 5 at position 1 is outside [0, 5); ids must be below vocab_size", Error);
  CHECK_THROWS_AS(embedding(w, from_ints({-1})), Error);
  CHECK_THROWS_WITH_AS(embedding(zeros({5}), ids), doctest::Contains("weight must be [V, d]"), Error);
}

TEST_CASE("rms_norm equals the composite x · rsqrt(mean(x²) + eps)") {
  Generator gen(45);
  Tensor x = random_leaf({2, 3, 8}, gen, -2, 2);
  const double eps = 1.1920928955078125e-07;
  // per-row scale applied in the layout where rows are the trailing axes: (d,B,T) · (B,T)
  Tensor row_scale = rsqrt(add_scalar(mean(mul(x, x), -1), eps));  // (B,T)
  Tensor composite = permute(mul(permute(x, {2, 0, 1}), row_scale), {1, 2, 0});
  check_close(rms_norm(x, eps), composite.to_double_vector(), 1e-14);
  check_close(rms_norm(x.to_dtype(DType::F32), eps), composite.to_double_vector(), 1e-6);
  check_gradients([&](const std::vector<Tensor>& in) { return rms_norm(in[0], eps); }, {x});
  check_gradients([&](const std::vector<Tensor>& in) { return rms_norm(transpose(in[0], 0, 1), eps); }, {x});
}

TEST_CASE("rope: the spec's half-split rotation, by a loop and by a composite of ops") {
  Generator gen(46);
  const int64_t B = 2, T = 3, R = 2, dh = 6;
  Tensor x = random_leaf({B, T, R, dh}, gen);
  Tensor positions = from_ints({0, 1, 2, 5, 6, 7}, {B, T});
  const std::vector<double> v = x.to_double_vector();
  const std::vector<int32_t> pos = positions.to_vector<int32_t>();
  std::vector<double> expected(v.size());
  for (int64_t p = 0; p < B * T; ++p)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t j = 0; j < dh / 2; ++j) {
        const double theta = pos[p] * std::pow(10000.0, -2.0 * j / dh);
        const int64_t base = (p * R + r) * dh;
        expected[base + j] = v[base + j] * std::cos(theta) + v[base + j + dh / 2] * std::sin(theta);
        expected[base + j + dh / 2] = -v[base + j] * std::sin(theta) + v[base + j + dh / 2] * std::cos(theta);
      }
  check_close(rope(x, positions), expected, 1e-14);
  check_close(rope(x.to_dtype(DType::F32), positions), expected, 2e-6);
  // composite: with c, s the cos/sin tables, rope(x) = [x1·c + x2·s, −x1·s + x2·c]
  std::vector<double> cs, sn;
  for (int64_t p = 0; p < B * T; ++p)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t j = 0; j < dh / 2; ++j) {
        const double theta = pos[p] * std::pow(10000.0, -2.0 * j / dh);
        cs.push_back(std::cos(theta));
        sn.push_back(std::sin(theta));
      }
  Tensor c = from_vector(cs, {B, T, R, dh / 2}, DType::F64), s = from_vector(sn, {B, T, R, dh / 2}, DType::F64);
  std::vector<Tensor> halves = split(x, -1, {dh / 2, dh / 2});
  Tensor composite = concat({halves[0] * c + halves[1] * s, halves[1] * c - halves[0] * s}, -1);
  check_close(rope(x, positions), composite.to_double_vector(), 1e-14);
  check_gradients([&](const std::vector<Tensor>& in) { return rope(in[0], positions); }, {x});
  // positions for [T] only broadcast over nothing else: x [T, H, dh] with positions [T]
  Tensor y = random_leaf({4, 3, 8}, gen);
  check_gradients([](const std::vector<Tensor>& in) { return rope(in[0], from_ints({3, 0, 1, 2}, {4})); }, {y});
  // position 0 is the identity
  Tensor at_zero = rope(y, from_ints({0, 0, 0, 0}, {4}));
  check_close(at_zero, y.to_double_vector(), 0);
  CHECK_THROWS_WITH_AS(rope(zeros({2, 3, 5}), from_ints({0, 1}, {2})), doctest::Contains("even length"), Error);
  CHECK_THROWS_WITH_AS(rope(zeros({2, 3, 4}), from_ints({0, 1, 2}, {3})), doctest::Contains("must be a prefix"), Error);
}

TEST_CASE("swiglu equals the composite silu(gate) * up, by a loop too") {
  Generator gen(47);
  Tensor gate = random_leaf({2, 3, 7}, gen, -3, 3), up = random_leaf({2, 3, 7}, gen, -2, 2);
  const std::vector<double> g = gate.to_double_vector(), u = up.to_double_vector();
  std::vector<double> expected(g.size());
  for (size_t i = 0; i < g.size(); ++i) expected[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
  check_close(swiglu(gate, up), expected, 1e-14);
  check_close(swiglu(gate, up), (silu(gate) * up).to_double_vector(), 1e-15);
  check_close(swiglu(gate.to_dtype(DType::F32), up.to_dtype(DType::F32)), expected, 1e-6);
  check_gradients([](const std::vector<Tensor>& in) { return swiglu(in[0], in[1]); }, {gate, up});
  // non-contiguous inputs are read through their views
  check_gradients([](const std::vector<Tensor>& in) { return swiglu(transpose(in[0], 0, 1), transpose(in[1], 0, 1)); },
                  {gate, up});
  CHECK_THROWS_WITH_AS(swiglu(zeros({2, 3}), zeros({3, 2})), doctest::Contains("must have one shape"), Error);
}

TEST_CASE("tpa_product equals (1/R) a·b per token, by a loop and by the batched-matmul composite") {
  Generator gen(48);
  const int64_t B = 2, T = 3, H = 5, R = 3, dh = 7;  // awkward sizes on purpose
  Tensor a = random_leaf({B, T, H, R}, gen), b = random_leaf({B, T, R, dh}, gen);
  const std::vector<double> av = a.to_double_vector(), bv = b.to_double_vector();
  std::vector<double> expected(static_cast<size_t>(B * T * H * dh), 0.0);
  for (int64_t n = 0; n < B * T; ++n)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t j = 0; j < dh; ++j) {
        double sum = 0;
        for (int64_t r = 0; r < R; ++r) sum += av[(n * H + h) * R + r] * bv[(n * R + r) * dh + j];
        expected[(n * H + h) * dh + j] = sum / R;
      }
  const Tensor out = tpa_product(a, b);
  CHECK(out.shape() == Shape{B, T, H, dh});
  check_close(out, expected, 1e-14);
  const Tensor composite = reshape(matmul(reshape(a, {B * T, H, R}), reshape(b, {B * T, R, dh})) * (1.0 / R),
                                   {B, T, H, dh});
  check_close(out, composite.to_double_vector(), 1e-15);
  check_close(tpa_product(a.to_dtype(DType::F32), b.to_dtype(DType::F32)), expected, 1e-6);
  check_gradients([](const std::vector<Tensor>& in) { return tpa_product(in[0], in[1]); }, {a, b});
  // rank 1, and a strided view of b
  Tensor a1 = random_leaf({4, 6, 1}, gen), b1 = random_leaf({4, 5, 1}, gen);
  check_gradients([](const std::vector<Tensor>& in) { return tpa_product(in[0], transpose(in[1], 1, 2)); }, {a1, b1});
  // no tokens, and no head columns: empty heads, zero gradients
  CHECK(tpa_product(zeros({0, 2, 1}), zeros({0, 1, 4})).shape() == Shape{0, 2, 4});
  Tensor a0 = random_leaf({2, 3, 2}, gen), b0 = random_leaf({2, 2, 0}, gen);
  sum(tpa_product(a0, b0)).backward();
  check_close(a0.grad(), std::vector<double>(12, 0.0), 0);
  CHECK_THROWS_WITH_AS(tpa_product(zeros({2, 3, 2}), zeros({2, 3, 4})), doctest::Contains("tpa_product: needs factors"),
                       Error);
  CHECK_THROWS_WITH_AS(tpa_product(zeros({2, 3, 2}), zeros({3, 2, 4})), doctest::Contains("same leading axes"), Error);
}
