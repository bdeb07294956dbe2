// The T6 model family: parameter names and shapes, initialisation, whole-model float64 gradient checks
// for every attention variant (one of them sharp: random weights, a random weight per target, tight
// tolerances), every variant's logits and loss against plain loops over the spec's formulas, the TPA
// identities of the paper, and causality.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "nn/causal_attention.h"
#include "nn/gqa_attention.h"
#include "nn/parameter_layout.h"
#include "nn/t6_model.h"
#include "nn/tpa_attention.h"
#include "test_helpers.h"

using namespace t6;
using namespace t6::testing;

namespace {

ModelConfig tiny_config(const std::string& attention) {
  ModelConfig c;
  c.vocab_size = 11;
  c.n_layer = 2;
  c.n_embd = 8;
  c.n_head = attention == "gqa" ? 4 : 2;
  c.head_dim = 4;
  c.q_rank = 3;
  c.rank = 2;
  c.block_size = 8;
  c.attention = attention_kind_names().parse(attention, "attention");
  c.n_kv_head = attention == "gqa" ? 2 : 0;
  c.init_seed = 7;
  return c;
}

const std::vector<std::string> kVariants = {"tpa", "tpa_kvonly", "mha", "gqa", "mqa"};

}  // namespace

TEST_CASE("parameter names and shapes are the spec's, and the layout function agrees with the model") {
  for (const std::string& variant : kVariants) {
    INFO("attention " << variant);
    const ModelConfig c = tiny_config(variant);
    T6Model model(c);
    const auto named = model.named_parameters();
    const auto layout = parameter_layout(c);
    REQUIRE(named.size() == layout.size());
    for (size_t i = 0; i < named.size(); ++i) {
      CHECK(named[i].first == layout[i].name);
      CHECK(named[i].second.shape() == layout[i].shape);
    }
    CHECK(model.parameter_count() == parameter_total(c));
  }
  const ModelConfig c = tiny_config("tpa");
  T6Model model(c);
  const auto named = model.named_parameters();
  CHECK(named[0].first == "transformer.wte.weight");
  CHECK(named[1].first == "transformer.h.0.attn.c_qkv.W_A_q.weight");
  CHECK(named[1].second.shape() == Shape{2 * 3, 8});  // [H·RQ, d]
  CHECK(named[4].first == "transformer.h.0.attn.c_qkv.W_B_q.weight");
  CHECK(named[4].second.shape() == Shape{3 * 4, 8});  // [RQ·dh, d]
  CHECK(named[7].first == "transformer.h.0.attn.c_proj.weight");
  CHECK(named[10].first == "transformer.h.0.mlp.c_proj.weight");
  CHECK(named[10].second.shape() == Shape{8, 21});  // F = floor(8·8/3) = 21
  // every variant's block, name by name: d=8, H=2 (4 for gqa), dh=4, RQ=3, R=2, kv heads 2 (gqa), 1 (mqa)
  const std::vector<ParameterSpec> mlp = {{"mlp.c_fc1", {21, 8}}, {"mlp.c_fc2", {21, 8}}, {"mlp.c_proj", {8, 21}}};
  const std::vector<ParameterSpec> factors = {{"attn.c_qkv.W_A_k", {4, 8}}, {"attn.c_qkv.W_A_v", {4, 8}},
                                              {"attn.c_qkv.W_B_k", {8, 8}}, {"attn.c_qkv.W_B_v", {8, 8}}};
  const std::map<std::string, std::vector<ParameterSpec>> block = {
      {"tpa", {{"attn.c_qkv.W_A_q", {6, 8}}, factors[0], factors[1], {"attn.c_qkv.W_B_q", {12, 8}}, factors[2],
               factors[3], {"attn.c_proj", {8, 8}}}},
      {"tpa_kvonly", {{"attn.c_q", {8, 8}}, factors[0], factors[1], factors[2], factors[3], {"attn.c_proj", {8, 8}}}},
      {"mha", {{"attn.c_q", {8, 8}}, {"attn.c_k", {8, 8}}, {"attn.c_v", {8, 8}}, {"attn.c_proj", {8, 8}}}},
      {"gqa", {{"attn.c_q", {16, 8}}, {"attn.c_k", {8, 8}}, {"attn.c_v", {8, 8}}, {"attn.c_proj", {8, 16}}}},
      {"mqa", {{"attn.c_q", {8, 8}}, {"attn.c_k", {4, 8}}, {"attn.c_v", {4, 8}}, {"attn.c_proj", {8, 8}}}}};
  for (const auto& [variant, attn] : block) {
    INFO("attention " << variant);
    const auto layout = parameter_layout(tiny_config(variant));
    std::vector<ParameterSpec> expected = {{"transformer.wte.weight", {11, 8}}};
    for (int layer = 0; layer < 2; ++layer)
      for (const std::vector<ParameterSpec>* part : {&attn, &mlp})
        for (const ParameterSpec& p : *part)
          expected.push_back({"transformer.h." + std::to_string(layer) + "." + p.name + ".weight", p.shape});
    REQUIRE(layout.size() == expected.size());
    for (size_t i = 0; i < layout.size(); ++i) {
      CHECK(layout[i].name == expected[i].name);
      CHECK(layout[i].shape == expected[i].shape);
    }
  }
  // the paper's small T6
  ModelConfig small;
  CHECK(parameter_total(small) == 124342272);
  CHECK(small.kv_cache_numbers_per_token_per_layer() == 392);
}

TEST_CASE("a model built shapes-only has every name and shape and allocates nothing") {
  // GPT-3's depth and width with TPA attention: 134 billion parameters, 535 GB in float32, counted at once
  ModelConfig huge;
  huge.n_layer = 96, huge.n_embd = 12288, huge.n_head = 96, huge.head_dim = 128;
  const int64_t d = 12288, H = 96, dh = 128, RQ = 6, R = 2, F = 8 * d / 3;
  const int64_t per_layer = d * (H * RQ + 2 * H * R + RQ * dh + 2 * R * dh) + H * dh * d + 3 * F * d;
  CHECK(parameter_total(huge) == 50304 * d + 96 * per_layer);
  const T6Model model = T6Model::shapes_only(huge);
  CHECK(model.parameter_layout().size() == 1 + 96 * 10);  // wte, then six factors, c_proj and three MLP layers
  CHECK_THROWS_WITH_AS(model.named_parameters(), doctest::Contains("the model was built shapes-only"), Error);
}

TEST_CASE("initialisation follows the spec and is reproducible from the seed") {
  ModelConfig c = tiny_config("tpa");
  c.n_embd = 48;
  c.n_head = 3;
  T6Model a(c), b(c);
  for (auto& [name, p] : a.named_parameters()) {
    INFO(name);
    const std::vector<double> v = p.to_double_vector();
    double bound = 1.0 / std::sqrt(48.0);  // wte, c_fc1, c_fc2
    if (name.find("W_A_q") != std::string::npos) bound = std::sqrt(6.0 / (3 * 3 + 48 * 3));
    if (name.find("W_A_k") != std::string::npos || name.find("W_A_v") != std::string::npos)
      bound = std::sqrt(6.0 / (3 * 2 + 48 * 2));
    if (name.find("W_B_q") != std::string::npos) bound = std::sqrt(6.0 / (3 * 4 + 48 * 4));
    if (name.find("W_B_k") != std::string::npos || name.find("W_B_v") != std::string::npos)
      bound = std::sqrt(6.0 / (2 * 4 + 48 * 4));
    const bool zero = name.find("c_proj") != std::string::npos;
    double largest = 0;
    for (double x : v) largest = std::max(largest, std::fabs(x));
    if (zero) {
      CHECK(largest == 0.0);
    } else {
      CHECK(largest <= bound);
      CHECK(largest > 0.8 * bound);  // fills the range, so the bound is not a smaller one
    }
  }
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) CHECK(pa[i].second.to_double_vector() == pb[i].second.to_double_vector());
  c.init_seed = 8;
  T6Model other(c);
  CHECK(other.named_parameters()[0].second.to_double_vector() != pa[0].second.to_double_vector());
  // the spec's example bounds for the paper's small T6 (d=768, H=34, RQ=6, dh=64), read off a model of
  // that width (one layer, a small vocabulary): the largest of 156,672 (W_A_q) or 294,912 (W_B_q)
  // uniform draws lies within 1e-4 of the bound, which the spec gives to four digits
  ModelConfig paper_width;
  paper_width.n_layer = 1;
  paper_width.vocab_size = 16;
  T6Model small(paper_width);
  const auto largest_of = [&](const std::string& name) {
    double largest = 0;
    for (auto& [n, p] : small.named_parameters())
      if (n == name)
        for (double x : p.to_double_vector()) largest = std::max(largest, std::fabs(x));
    return largest;
  };
  CHECK(largest_of("transformer.h.0.attn.c_qkv.W_A_q.weight") == doctest::Approx(0.03531).epsilon(1e-3));
  CHECK(largest_of("transformer.h.0.attn.c_qkv.W_B_q.weight") == doctest::Approx(0.01101).epsilon(1e-3));
}

TEST_CASE("whole-model float64 gradient check, every parameter tensor, every attention variant") {
  // The model's mean loss is one scalar, so the check's "random upstream" is one factor, and with the
  // default atol (1e-5) a derivative of 1e-3 may be 1% off and pass. So each model is also checked
  // sharp: every target's cross-entropy has its own random weight, and atol sits just above the
  // finite-difference noise (central differences with ε = 1e-6 on this loss err by at most 1e-9,
  // measured over all five variants). From the resolution atol/rtol = 3e-5 up a derivative is held to
  // 2e-4 of itself, and an error of 1.5% is caught in any derivative above atol / (0.015 − rtol) = 2e-7:
  // every derivative of these models (the smallest is 3.4e-6). Every weight of every layer is
  // random and non-zero, so the c_proj layers the spec initialises to zero hide nothing.
  GradcheckOptions sharp;
  sharp.atol = 3e-9;
  sharp.rtol = 1e-4;
  for (const std::string& variant : kVariants) {
    INFO("attention " << variant);
    T6Model model(tiny_config(variant));
    model.to(DType::F64);
    Generator gen(99);
    model.fill_uniform(gen, 0.5);
    Tensor idx = from_ints({1, 4, 7, 2, 9, 0, 3, 3, 10, 5}, {2, 5});
    Tensor targets = from_ints({4, 7, 2, 9, -1, 3, 3, 10, 5, 6}, {2, 5});
    std::vector<Tensor> params = model.parameters();
    for (const Tensor& p : params) {  // non-degenerate: no parameter tensor is near zero
      double largest = 0;
      for (double v : p.to_double_vector()) largest = std::max(largest, std::fabs(v));
      CHECK(largest > 0.25);
    }
    auto loss_fn = [&](const std::vector<Tensor>&) { return model.forward(idx, targets).loss; };
    const GradcheckResult loss_check = gradcheck(loss_fn, params);
    INFO(loss_check.summary());
    CHECK(loss_check.passed);
    CHECK(loss_check.derivatives_checked == model.parameter_count());
    // the loss training uses (the fused head and loss) is that loss, with the same gradients
    model.zero_grad();
    const Tensor fused = model.loss(idx, targets);
    fused.backward();
    std::vector<std::vector<double>> fused_grads;
    for (const Tensor& p : params) fused_grads.push_back(p.grad().to_double_vector());
    model.zero_grad();
    const Tensor composite = model.forward(idx, targets).loss;
    composite.backward();
    CHECK(fused.item() == doctest::Approx(composite.item()).epsilon(1e-13));
    for (size_t i = 0; i < params.size(); ++i) check_close(params[i].grad(), fused_grads[i], 1e-12);
    model.zero_grad();
    // the logits too, with a random upstream gradient over (B,T,V)
    auto logits_fn = [&](const std::vector<Tensor>&) { return model.forward(idx).logits; };
    const GradcheckResult logits_check = gradcheck(logits_fn, params);
    INFO(logits_check.summary());
    CHECK(logits_check.passed);
    // sharp: a random weight per target, tight tolerances
    std::vector<double> weights(10);
    for (double& w : weights) w = gen.normal();
    auto weighted_fn = [&](const std::vector<Tensor>&) {
      return weighted_cross_entropy(model.forward(idx).logits, targets, weights);
    };
    const GradcheckResult r = gradcheck(weighted_fn, params, sharp);
    INFO(r.summary());
    CHECK(r.passed);
    CHECK(r.derivatives_checked == model.parameter_count());
    CHECK(r.resolution == doctest::Approx(3e-5));
    CHECK(r.least_resolved_share <= 0.05);  // of every parameter tensor, 95% of derivatives held to 2e-4
    const double catches_one_and_a_half_percent = sharp.atol / (0.015 - sharp.rtol);
    CHECK(r.smallest_magnitude > catches_one_and_a_half_percent);  // a 1.5% error anywhere fails
  }
}

TEST_CASE("the tied embedding's gradient is the sum of its two uses") {
  T6Model model(tiny_config("tpa"));
  model.to(DType::F64);
  Generator gen(3);
  model.fill_uniform(gen, 0.5);
  Tensor idx = from_ints({1, 2, 3}, {1, 3}), targets = from_ints({2, 3, 4}, {1, 3});
  model.forward(idx, targets).loss.backward();
  const Tensor wte = model.transformer.wte.weight;
  const std::vector<double> both = wte.grad().to_double_vector();
  // the head's share alone: logits from a detached input representation
  model.zero_grad();
  {
    Tensor x = model.transformer.wte.forward(idx).detach();
    for (size_t i = 0; i < model.transformer.h.size(); ++i) x = model.transformer.block(i).forward(x, model.positions(1, 3));
    cross_entropy(model.transformer.wte.logits(rms_norm(x, model.config.norm_eps)), targets).backward();
  }
  const std::vector<double> head_only = wte.grad().to_double_vector();
  model.zero_grad();
  {
    Tensor x = model.transformer.wte.forward(idx);
    for (size_t i = 0; i < model.transformer.h.size(); ++i) x = model.transformer.block(i).forward(x, model.positions(1, 3));
    cross_entropy(matmul(rms_norm(x, model.config.norm_eps), wte.detach(), false, true), targets).backward();
  }
  const std::vector<double> embedding_only = wte.grad().to_double_vector();
  for (size_t i = 0; i < both.size(); ++i) CHECK(both[i] == doctest::Approx(head_only[i] + embedding_only[i]).epsilon(1e-12));
}

TEST_CASE("backward reports every parameter's gradient final once, the tied embedding last, after both uses") {
  T6Model model(tiny_config("tpa"));
  Tensor idx = from_ints({1, 2, 3, 4}, {1, 4}), targets = from_ints({2, 3, 4, 5}, {1, 4});
  std::map<const TensorImpl*, int> reports;
  std::map<const TensorImpl*, std::vector<double>> reported;
  const TensorImpl* last = nullptr;
  model.forward(idx, targets).loss.backward({}, false, [&](const Tensor& leaf) {
    ++reports[leaf.impl_ptr().get()];
    reported[leaf.impl_ptr().get()] = leaf.grad().to_double_vector();
    last = leaf.impl_ptr().get();
  });
  for (const auto& [name, p] : model.named_parameters()) {
    INFO(name);
    CHECK(reports[p.impl_ptr().get()] == 1);
    CHECK(reported[p.impl_ptr().get()] == p.grad().to_double_vector());
  }
  CHECK(reports.size() == model.named_parameters().size());
  CHECK(last == model.transformer.wte.weight.impl_ptr().get());
}

namespace {

// ---- the spec's formulas as plain loops, for one layer of TPA ------------------------------------
using Vec = std::vector<double>;

Vec linear_ref(const Vec& w, const Vec& x, int64_t out, int64_t in) {  // W [out,in] · x
  Vec y(out, 0.0);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) y[o] += w[o * in + i] * x[i];
  return y;
}

Vec rmsnorm_ref(const Vec& x, double eps) {
  double ms = 0;
  for (double v : x) ms += v * v / x.size();
  Vec y(x);
  for (double& v : y) v /= std::sqrt(ms + eps);
  return y;
}

void rope_row_ref(double* b, int64_t dh, int64_t t) {
  for (int64_t j = 0; j < dh / 2; ++j) {
    const double th = t * std::pow(10000.0, -2.0 * j / dh);
    const double x1 = b[j], x2 = b[j + dh / 2];
    b[j] = x1 * std::cos(th) + x2 * std::sin(th);
    b[j + dh / 2] = -x1 * std::sin(th) + x2 * std::cos(th);
  }
}

}  // namespace

TEST_CASE("one-layer logits on two tokens equal plain loops over the spec's formulas") {
  ModelConfig c = tiny_config("tpa");
  c.n_layer = 1;
  T6Model model(c);
  model.to(DType::F64);
  Generator gen(123);
  model.fill_uniform(gen, 0.5);
  std::map<std::string, Vec> W;
  for (auto& [name, p] : model.named_parameters()) W[name] = p.to_double_vector();
  const std::string L = "transformer.h.0.";
  const int64_t d = c.n_embd, H = c.n_head, dh = c.head_dim, RQ = c.q_rank, R = c.rank, V = c.vocab_size,
                F = c.mlp_hidden();
  const std::vector<int> tokens = {5, 9};

  std::vector<Vec> x(2), q(2), k(2), v(2);
  for (int t = 0; t < 2; ++t) {
    x[t] = Vec(W["transformer.wte.weight"].begin() + tokens[t] * d, W["transformer.wte.weight"].begin() + (tokens[t] + 1) * d);
    const Vec n = rmsnorm_ref(x[t], c.norm_eps);
    Vec Aq = linear_ref(W[L + "attn.c_qkv.W_A_q.weight"], n, H * RQ, d);  // A_q[h,r] = Aq[h·RQ + r]
    Vec Ak = linear_ref(W[L + "attn.c_qkv.W_A_k.weight"], n, H * R, d);
    Vec Av = linear_ref(W[L + "attn.c_qkv.W_A_v.weight"], n, H * R, d);
    Vec Bq = linear_ref(W[L + "attn.c_qkv.W_B_q.weight"], n, RQ * dh, d);  // B_q[r,j] = Bq[r·dh + j]
    Vec Bk = linear_ref(W[L + "attn.c_qkv.W_B_k.weight"], n, R * dh, d);
    Vec Bv = linear_ref(W[L + "attn.c_qkv.W_B_v.weight"], n, R * dh, d);
    for (int64_t r = 0; r < RQ; ++r) rope_row_ref(&Bq[r * dh], dh, t);
    for (int64_t r = 0; r < R; ++r) rope_row_ref(&Bk[r * dh], dh, t);
    q[t] = k[t] = v[t] = Vec(H * dh, 0.0);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t j = 0; j < dh; ++j) {
        for (int64_t r = 0; r < RQ; ++r) q[t][h * dh + j] += Aq[h * RQ + r] * Bq[r * dh + j] / RQ;
        for (int64_t r = 0; r < R; ++r) k[t][h * dh + j] += Ak[h * R + r] * Bk[r * dh + j] / R;
        for (int64_t r = 0; r < R; ++r) v[t][h * dh + j] += Av[h * R + r] * Bv[r * dh + j] / R;
      }
  }
  Vec expected;
  for (int t = 0; t < 2; ++t) {
    Vec y(H * dh, 0.0);
    for (int64_t h = 0; h < H; ++h) {
      Vec s;
      for (int m = 0; m <= t; ++m) {  // causal: token t sees tokens 0…t
        double dot = 0;
        for (int64_t j = 0; j < dh; ++j) dot += q[t][h * dh + j] * k[m][h * dh + j];
        s.push_back(dot / std::sqrt(static_cast<double>(dh)));
      }
      double mx = *std::max_element(s.begin(), s.end()), z = 0;
      for (double& e : s) z += (e = std::exp(e - mx));
      for (int m = 0; m <= t; ++m)
        for (int64_t j = 0; j < dh; ++j) y[h * dh + j] += s[m] / z * v[m][h * dh + j];
    }
    Vec h1 = x[t];
    const Vec attn_out = linear_ref(W[L + "attn.c_proj.weight"], y, d, H * dh);
    for (int64_t i = 0; i < d; ++i) h1[i] += attn_out[i];
    const Vec n2 = rmsnorm_ref(h1, c.norm_eps);
    const Vec a = linear_ref(W[L + "mlp.c_fc1.weight"], n2, F, d), b = linear_ref(W[L + "mlp.c_fc2.weight"], n2, F, d);
    Vec g(F);
    for (int64_t f = 0; f < F; ++f) g[f] = a[f] / (1 + std::exp(-a[f])) * b[f];  // silu(a) ⊙ b
    const Vec mlp_out = linear_ref(W[L + "mlp.c_proj.weight"], g, d, F);
    for (int64_t i = 0; i < d; ++i) h1[i] += mlp_out[i];
    const Vec final_x = rmsnorm_ref(h1, c.norm_eps);
    const Vec logits = linear_ref(W["transformer.wte.weight"], final_x, V, d);  // tied head
    expected.insert(expected.end(), logits.begin(), logits.end());
  }
  const Tensor idx = from_ints({5, 9}, {1, 2});
  check_close(model.forward(idx).logits, expected, 1e-12);
  // and in float32, within float32 rounding
  model.to(DType::F32);
  check_close(model.forward(idx).logits, expected, 1e-5);
}

namespace {

// ---- the spec's whole forward pass as plain loops, for every attention variant --------------------
// Written from the spec alone (T6-SPEC.md: "Forward pass", "Tensor Product Attention", "RoPE" and
// "Variants"), sharing nothing with nn/ but the parameter names: a consistent bug in a variant's module
// (keys without RoPE, a wrong 1/√dh, a wrong 1/R, the wrong key/value head for a query head) would pass
// its gradient checks, its causality test and its decode-versus-forward tests, but not this.
struct ReferenceModel {
  ModelConfig c;
  std::string variant;
  std::map<std::string, Vec> W;

  int64_t kv_heads() const {  // heads of k and v: every head for TPA and MHA, n_kv_head for GQA, 1 for MQA
    if (variant == "gqa") return c.n_kv_head;
    return variant == "mqa" ? 1 : c.n_head;
  }

  // One token's heads from its normalised input n at position t: q [H·dh], k and v [kv_heads·dh],
  // head-major (head h, feature j at h·dh + j).
  void heads(const std::string& L, const Vec& n, int64_t t, Vec& q, Vec& k, Vec& v) const {
    const int64_t d = c.n_embd, H = c.n_head, dh = c.head_dim, RQ = c.q_rank, R = c.rank, Hkv = kv_heads();
    const auto w = [&](const std::string& name) -> const Vec& { return W.at(L + name + ".weight"); };
    q = k = v = Vec();
    if (variant == "tpa" || variant == "tpa_kvonly") {
      const Vec Ak = linear_ref(w("attn.c_qkv.W_A_k"), n, H * R, d);  // A_k[h,r] = Ak[h·R + r]
      const Vec Av = linear_ref(w("attn.c_qkv.W_A_v"), n, H * R, d);
      Vec Bk = linear_ref(w("attn.c_qkv.W_B_k"), n, R * dh, d);  // B_k[r,j] = Bk[r·dh + j]
      const Vec Bv = linear_ref(w("attn.c_qkv.W_B_v"), n, R * dh, d);
      for (int64_t r = 0; r < R; ++r) rope_row_ref(&Bk[r * dh], dh, t);  // B_v is not rotated
      k = v = Vec(H * dh, 0.0);
      for (int64_t h = 0; h < H; ++h)
        for (int64_t j = 0; j < dh; ++j)
          for (int64_t r = 0; r < R; ++r) {
            k[h * dh + j] += Ak[h * R + r] * Bk[r * dh + j] / R;  // k = (1/R) A_k B_k
            v[h * dh + j] += Av[h * R + r] * Bv[r * dh + j] / R;  // v = (1/R) A_v B_v
          }
      if (variant == "tpa") {
        const Vec Aq = linear_ref(w("attn.c_qkv.W_A_q"), n, H * RQ, d);
        Vec Bq = linear_ref(w("attn.c_qkv.W_B_q"), n, RQ * dh, d);
        for (int64_t r = 0; r < RQ; ++r) rope_row_ref(&Bq[r * dh], dh, t);
        q = Vec(H * dh, 0.0);
        for (int64_t h = 0; h < H; ++h)
          for (int64_t j = 0; j < dh; ++j)
            for (int64_t r = 0; r < RQ; ++r) q[h * dh + j] += Aq[h * RQ + r] * Bq[r * dh + j] / RQ;
        return;
      }
    } else {  // mha, gqa, mqa: plain key and value projections, RoPE on every key head
      k = linear_ref(w("attn.c_k"), n, Hkv * dh, d);
      v = linear_ref(w("attn.c_v"), n, Hkv * dh, d);
      for (int64_t h = 0; h < Hkv; ++h) rope_row_ref(&k[h * dh], dh, t);
    }
    q = linear_ref(w("attn.c_q"), n, H * dh, d);  // tpa_kvonly and the baselines: RoPE on every query head
    for (int64_t h = 0; h < H; ++h) rope_row_ref(&q[h * dh], dh, t);
  }

  // Attn(n) for one sequence: causal softmax(q·k/√dh) per head, query head h reading key/value head
  // h / (H / kv_heads) (GQA's groups are consecutive query heads), then c_proj.
  std::vector<Vec> attention(const std::string& L, const std::vector<Vec>& n) const {
    const int64_t T = static_cast<int64_t>(n.size()), d = c.n_embd, H = c.n_head, dh = c.head_dim;
    const int64_t group = H / kv_heads();
    std::vector<Vec> q(T), k(T), v(T), out(T);
    for (int64_t t = 0; t < T; ++t) heads(L, n[t], t, q[t], k[t], v[t]);
    for (int64_t t = 0; t < T; ++t) {
      Vec y(H * dh, 0.0);  // heads concatenated, head-major
      for (int64_t h = 0; h < H; ++h) {
        const int64_t kv = h / group;
        Vec s(t + 1);
        for (int64_t m = 0; m <= t; ++m) {  // causal: token t sees tokens 0…t
          double dot = 0;
          for (int64_t j = 0; j < dh; ++j) dot += q[t][h * dh + j] * k[m][kv * dh + j];
          s[m] = dot / std::sqrt(static_cast<double>(dh));
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double z = 0;
        for (double& e : s) z += (e = std::exp(e - mx));
        for (int64_t m = 0; m <= t; ++m)
          for (int64_t j = 0; j < dh; ++j) y[h * dh + j] += s[m] / z * v[m][kv * dh + j];
      }
      out[t] = linear_ref(W.at(L + "attn.c_proj.weight"), y, d, H * dh);
    }
    return out;
  }

  // MLP(n) = c_proj(silu(c_fc1 n) ⊙ c_fc2 n)
  Vec mlp(const std::string& L, const Vec& n) const {
    const int64_t d = c.n_embd, F = c.mlp_hidden();
    const Vec a = linear_ref(W.at(L + "mlp.c_fc1.weight"), n, F, d);
    const Vec b = linear_ref(W.at(L + "mlp.c_fc2.weight"), n, F, d);
    Vec g(F);
    for (int64_t f = 0; f < F; ++f) g[f] = a[f] / (1 + std::exp(-a[f])) * b[f];
    return linear_ref(W.at(L + "mlp.c_proj.weight"), g, d, F);
  }

  // Logits [T·V] of one sequence.
  Vec logits(const std::vector<int>& tokens) const {
    const int64_t T = static_cast<int64_t>(tokens.size()), d = c.n_embd, V = c.vocab_size;
    const Vec& wte = W.at("transformer.wte.weight");
    std::vector<Vec> x(T);
    for (int64_t t = 0; t < T; ++t) x[t] = Vec(wte.begin() + tokens[t] * d, wte.begin() + (tokens[t] + 1) * d);
    for (int64_t layer = 0; layer < c.n_layer; ++layer) {
      const std::string L = "transformer.h." + std::to_string(layer) + ".";
      std::vector<Vec> n(T);
      for (int64_t t = 0; t < T; ++t) n[t] = rmsnorm_ref(x[t], c.norm_eps);
      const std::vector<Vec> attn = attention(L, n);  // x = x + Attn(rmsnorm(x))
      for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < d; ++i) x[t][i] += attn[t][i];
      for (int64_t t = 0; t < T; ++t) {  // x = x + MLP(rmsnorm(x))
        const Vec m = mlp(L, rmsnorm_ref(x[t], c.norm_eps));
        for (int64_t i = 0; i < d; ++i) x[t][i] += m[i];
      }
    }
    Vec out;
    for (int64_t t = 0; t < T; ++t) {
      const Vec l = linear_ref(wte, rmsnorm_ref(x[t], c.norm_eps), V, d);  // the tied head
      out.insert(out.end(), l.begin(), l.end());
    }
    return out;
  }
};

// Configs where H·dh ≠ d (so no axis can stand in for another), every rank above 1, two layers.
ModelConfig reference_config(const std::string& variant) {
  ModelConfig c = tiny_config(variant);
  c.n_head = variant == "gqa" ? 6 : 3;  // gqa: groups of 3 query heads on 2 key/value heads
  c.n_embd = 10;
  c.head_dim = 4;
  return c;
}

}  // namespace

TEST_CASE("every attention variant's logits and loss equal plain loops over the spec's formulas") {
  for (const std::string& variant : kVariants) {
    INFO("attention " << variant);
    ReferenceModel ref{reference_config(variant), variant, {}};
    T6Model model(ref.c);
    model.to(DType::F64);
    Generator gen(321);
    model.fill_uniform(gen, 0.5);  // every weight random and non-zero, c_proj included
    for (auto& [name, p] : model.named_parameters()) ref.W[name] = p.to_double_vector();
    const int64_t V = ref.c.vocab_size;
    for (const int64_t T : {1, 3, 8}) {  // one token (RoPE at position 0 is the identity), a few, block_size
      INFO("T = " << T);
      const int64_t B = 2;
      const std::vector<int32_t> ids = random_token_ids(B * T, V, gen);
      std::vector<int32_t> targets = random_token_ids(B * T, V, gen);
      targets[0] = -1;  // an ignored target
      Vec expected;
      double loss = 0;
      int counted = 0;
      for (int64_t b = 0; b < B; ++b) {  // each batch row is its own sequence, positions from 0
        const Vec row = ref.logits(std::vector<int>(ids.begin() + b * T, ids.begin() + (b + 1) * T));
        expected.insert(expected.end(), row.begin(), row.end());
        for (int64_t t = 0; t < T; ++t) {
          const int32_t target = targets[b * T + t];
          if (target < 0) continue;
          const double* l = &row[t * V];
          const double mx = *std::max_element(l, l + V);
          double z = 0;
          for (int64_t i = 0; i < V; ++i) z += std::exp(l[i] - mx);
          loss += mx + std::log(z) - l[target];  // cross-entropy: logsumexp − the target's logit
          ++counted;
        }
      }
      const T6Model::Output out = model.forward(from_ints(ids, {B, T}), from_ints(targets, {B, T}));
      CHECK(out.logits.shape() == Shape{B, T, V});
      check_close(out.logits, expected, 1e-12);
      CHECK(out.loss.item() == doctest::Approx(loss / std::max(counted, 1)).epsilon(1e-12));
    }
  }
}

TEST_CASE("TPA identity: the factorized heads equal the explicit sum of tensor products") {
  // q_t[h, :] = (1/R) Σ_r A[h, r] · B[r, :], i.e. q_t = (1/R) Σ_r a_r ⊗ b_r with a_r = A[:, r], b_r = B[r, :]
  Generator gen(8);
  const int64_t B = 2, T = 3, H = 4, R = 3, dh = 6;
  Tensor a = uniform({B, T, H, R}, -1, 1, gen, DType::F64), b = uniform({B, T, R, dh}, -1, 1, gen, DType::F64);
  const std::vector<double> av = a.to_double_vector(), bv = b.to_double_vector();
  std::vector<double> outer_sum(static_cast<size_t>(B * T * H * dh), 0.0);
  for (int64_t n = 0; n < B * T; ++n)
    for (int64_t r = 0; r < R; ++r)          // for each rank-one term a_r ⊗ b_r …
      for (int64_t h = 0; h < H; ++h)
        for (int64_t j = 0; j < dh; ++j)     // … add its (h, j) entry
          outer_sum[(n * H + h) * dh + j] += av[(n * H + h) * R + r] * bv[(n * R + r) * dh + j] / R;
  check_close(tpa_product(a, b), outer_sum, 1e-14);
}

TEST_CASE("TPA identity (Theorem 3.1): rotating the B factors equals rotating q and k") {
  Generator gen(9);
  const int64_t B = 2, T = 5, H = 3, R = 2, dh = 8;
  Tensor a = uniform({B, T, H, R}, -1, 1, gen, DType::F64), b = uniform({B, T, R, dh}, -1, 1, gen, DType::F64);
  Tensor pos = from_ints({0, 1, 2, 3, 4, 7, 8, 9, 10, 11}, {B, T});
  Tensor rotate_heads = rope(tpa_product(a, b), pos);   // RoPE(q) with q = (1/R) A B
  Tensor rotate_factors = tpa_product(a, rope(b, pos));  // (1/R) A · RoPE(B): what TPA caches
  check_close(rotate_factors, rotate_heads.to_double_vector(), 1e-14);
}

TEST_CASE("TPA identity (Section 4): MHA is a TPA whose head factors are fixed one-hot vectors") {
  // With rank R = H and the non-contextual factor A[h, r] = R·δ(h, r), (1/R) A B picks row h of B:
  // B holds the MHA heads and the TPA head product reproduces them exactly, so attention matches.
  ModelConfig c = tiny_config("mha");
  c.n_head = 3;
  Generator gen(10);
  GQAAttention mha(c, ParameterInit(gen));
  mha.to(DType::F64);
  mha.fill_uniform(gen, 0.5);
  const int64_t B = 2, T = 4, H = c.n_head;
  Tensor x = uniform({B, T, c.n_embd}, -1, 1, gen, DType::F64);
  Tensor pos = from_ints({0, 1, 2, 3, 0, 1, 2, 3}, {B, T});
  std::vector<double> one_hot(static_cast<size_t>(B * T * H * H), 0.0);
  for (int64_t n = 0; n < B * T; ++n)
    for (int64_t h = 0; h < H; ++h) one_hot[(n * H + h) * H + h] = static_cast<double>(H);
  Tensor A = from_vector(one_hot, {B, T, H, H}, DType::F64);  // (B,T,H,R=H), the same for every token
  Tensor q = tpa_product(A, mha.queries(x, pos));  // B_q = the MHA query heads, one per rank row
  Tensor k = tpa_product(A, mha.keys(x, pos));
  Tensor v = tpa_product(A, mha.values(x));
  Tensor as_tpa = mha.c_proj.forward(causal_attention(q, k, v, 1.0 / std::sqrt(static_cast<double>(c.head_dim))));
  check_close(as_tpa, mha.forward(x, pos).to_double_vector(), 1e-14);
}

TEST_CASE("causality: changing a future token changes no earlier logit") {
  for (const std::string& variant : kVariants) {
    INFO("attention " << variant);
    T6Model model(tiny_config(variant));
    Generator gen(11);
    model.fill_uniform(gen, 0.5);
    const std::vector<double> base = model.forward(from_ints({1, 2, 3, 4, 5, 6}, {1, 6})).logits.to_double_vector();
    const std::vector<double> changed = model.forward(from_ints({1, 2, 3, 9, 5, 6}, {1, 6})).logits.to_double_vector();
    const int64_t V = model.config.vocab_size;
    for (int64_t i = 0; i < 3 * V; ++i) CHECK(changed[i] == base[i]);  // positions 0-2: bit-identical
    bool later_changed = false;
    for (int64_t i = 3 * V; i < 6 * V; ++i) later_changed = later_changed || changed[i] != base[i];
    CHECK(later_changed);
  }
}

TEST_CASE("model config: JSON round trip and every rejection names the key") {
  ModelConfig c = tiny_config("gqa");
  CHECK(ModelConfig::from_json(c.to_json()).to_json() == c.to_json());
  auto rejects = [](const std::string& text, const std::string& expected) {
    INFO(text);
    CHECK_THROWS_WITH_AS(ModelConfig::from_json(nlohmann::json::parse(text), "cfg.json"),
                         doctest::Contains(expected.c_str()), Error);
  };
  rejects(R"({"n_layers": 2})", "cfg.json: unknown key \"n_layers\" (did you mean \"n_layer\"?)");
  rejects(R"({"n_embd": "big"})", "cfg.json.n_embd must be an integer");
  rejects(R"({"norm_eps": "x"})", "cfg.json.norm_eps must be a number");
  rejects(R"({"head_dim": 5})", "cfg.json.head_dim must be even");
  rejects(R"({"rank": 0})", "cfg.json.rank must be ≥ 1");
  rejects(R"({"attention": "gqa", "n_head": 6, "n_kv_head": 4})", "cfg.json.n_kv_head must be ≥ 1 and divide n_head (6)");
  rejects(R"({"attention": "tpa", "n_kv_head": 2})", "cfg.json.n_kv_head is only used by attention \"gqa\"");
  rejects(R"({"attention": "tpa2"})", "cfg.json.attention must be one of \"tpa\", \"tpa_kvonly\", \"mha\", \"gqa\", \"mqa\"");
  rejects(R"({"vocab_size": 70000})", "must be ≤ 65536");
  rejects(R"([1, 2])", "must be a JSON object");
  CHECK_THROWS_WITH_AS(T6Model(tiny_config("tpa")).forward(from_ints(std::vector<int32_t>(9, 1), {1, 9})),
                       doctest::Contains("a sequence of 9 tokens does not fit block_size 8"), Error);
  CHECK_THROWS_WITH_AS(T6Model(tiny_config("tpa")).forward(from_ints({1, 11}, {1, 2})),
                       doctest::Contains("token id 11 at position 1 is outside [0, 11)"), Error);
  CHECK_THROWS_WITH_AS(T6Model(tiny_config("tpa")).forward(from_ints({1, 2}, {1, 2}), from_ints({11, -1}, {1, 2})),
                       "cross_entropy: 1 target ids lie outside [-1, 11); every target must be a token id below "
                       "vocab_size or -1 (ignored)",
                       Error);
}
