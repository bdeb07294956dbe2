// `t6 gradcheck`: the float64 gradient check of every differentiable op and of a whole model, as a
// table a user can read (the same checks the test suite runs, on fresh random inputs).
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/random.h"
#include "nn/t6_model.h"
#include "nn/parameter_layout.h"
#include "train/cli/cli_args.h"
#include "train/cli/commands.h"
#include "train/train_config.h"

namespace t6 {

namespace {

const char* const kHelp = R"(usage: t6 gradcheck [--config FILE] [--json]

Checks every differentiable op and a whole model against central finite differences in float64
(eps 1e-6, random upstream gradients; ops at atol 1e-5, rtol 1e-3). The model has the shape of FILE's
model section, or, without --config, a tiny model of each attention variant; it is checked at random
weights in every layer, with a random weight per target (weighted cross-entropy) and an atol just above
the rounding noise of its loss. Model parameters with more than 512 elements are checked along 24
random directions. Each row ends with the check's resolution (atol/rtol: derivatives below it are held
to atol only) and how many derivatives fell below it. Exits 0 only if every check passes.
)";

struct Check {
  std::string name;
  std::function<Tensor(const std::vector<Tensor>&)> f;
  std::vector<Tensor> inputs;
  GradcheckOptions options = {};
};

Tensor leaf(const Shape& shape, Generator& gen, double low = -1.0, double high = 1.0) {
  Tensor t = uniform(shape, low, high, gen, DType::F64);
  t.set_requires_grad(true);
  return t;
}

std::vector<Check> op_checks(Generator& gen) {
  const Tensor ids = from_ints({1, 3, 1, 0, 4, 2}, {2, 3});
  const Tensor targets = from_ints({1, -1, 4, 0, 2, 2}, {2, 3});
  const Tensor positions = from_ints({0, 1, 2, 3, 4, 5}, {2, 3});
  return {
      {"add (broadcast row)", [](const auto& in) { return add(in[0], in[1]); }, {leaf({3, 4}, gen), leaf({4}, gen)}},
      {"sub", [](const auto& in) { return sub(in[0], in[1]); }, {leaf({3, 4}, gen), leaf({3, 4}, gen)}},
      {"mul (broadcast row)", [](const auto& in) { return mul(in[0], in[1]); }, {leaf({3, 4}, gen), leaf({4}, gen)}},
      {"div", [](const auto& in) { return div(in[0], in[1]); }, {leaf({3, 4}, gen), leaf({3, 4}, gen, 0.5, 1.5)}},
      {"neg", [](const auto& in) { return neg(in[0]); }, {leaf({3, 4}, gen)}},
      {"scale", [](const auto& in) { return scale(in[0], -1.7); }, {leaf({3, 4}, gen)}},
      {"matmul", [](const auto& in) { return matmul(in[0], in[1]); }, {leaf({3, 4}, gen), leaf({4, 5}, gen)}},
      {"matmul (batched, transposed)", [](const auto& in) { return matmul(in[0], in[1], true, true); },
       {leaf({2, 4, 3}, gen), leaf({2, 5, 4}, gen)}},
      {"reshape", [](const auto& in) { return reshape(in[0], {4, 3}); }, {leaf({3, 4}, gen)}},
      {"permute", [](const auto& in) { return permute(in[0], {2, 0, 1}); }, {leaf({2, 3, 4}, gen)}},
      {"slice", [](const auto& in) { return slice(in[0], 1, 1, 3); }, {leaf({3, 4}, gen)}},
      {"concat", [](const auto& in) { return concat({in[0], in[1]}, 0); }, {leaf({2, 4}, gen), leaf({3, 4}, gen)}},
      {"sum (axis)", [](const auto& in) { return sum(in[0], 1); }, {leaf({3, 4}, gen)}},
      {"mean", [](const auto& in) { return mean(in[0]); }, {leaf({3, 4}, gen)}},
      {"exp", [](const auto& in) { return exp(in[0]); }, {leaf({3, 4}, gen)}},
      {"log", [](const auto& in) { return log(in[0]); }, {leaf({3, 4}, gen, 0.5, 2.0)}},
      {"sqrt", [](const auto& in) { return sqrt(in[0]); }, {leaf({3, 4}, gen, 0.5, 2.0)}},
      {"rsqrt", [](const auto& in) { return rsqrt(in[0]); }, {leaf({3, 4}, gen, 0.5, 2.0)}},
      {"sigmoid", [](const auto& in) { return sigmoid(in[0]); }, {leaf({3, 4}, gen)}},
      {"silu", [](const auto& in) { return silu(in[0]); }, {leaf({3, 4}, gen)}},
      {"softmax (causal, scaled)", [](const auto& in) { return softmax(in[0], 0.7, true); }, {leaf({2, 4, 4}, gen)}},
      {"log_softmax", [](const auto& in) { return log_softmax(in[0]); }, {leaf({3, 5}, gen)}},
      {"cross_entropy (ignore -1)", [targets](const auto& in) { return cross_entropy(in[0], targets); },
       {leaf({2, 3, 5}, gen)}},
      {"embedding", [ids](const auto& in) { return embedding(in[0], ids); }, {leaf({5, 3}, gen)}},
      {"rms_norm", [](const auto& in) { return rms_norm(in[0], 1.1920928955078125e-07); }, {leaf({3, 8}, gen)}},
      {"rope", [positions](const auto& in) { return rope(in[0], positions); }, {leaf({2, 3, 2, 6}, gen)}},
  };
}

ModelConfig tiny(AttentionKind attention) {
  ModelConfig c;
  c.vocab_size = 11, c.n_layer = 2, c.n_embd = 8, c.head_dim = 4, c.q_rank = 3, c.rank = 2, c.block_size = 8;
  c.attention = attention;
  c.n_head = attention == AttentionKind::GQA ? 4 : 2;
  c.n_kv_head = attention == AttentionKind::GQA ? 2 : 0;
  return c;
}

// The model's loss as a function of its parameters, made sharp (as tests/test_model.cpp's sharp check):
// random (nonzero) weights everywhere, so the c_proj layers the spec initialises to zero hide nothing; a
// random weight per target (weighted_cross_entropy), so the check's upstream is not one scalar factor;
// and an atol just above the finite differences' rounding noise (about 1e-16·|L|/ε, times the depth of
// the computation) instead of 1e-5, so that small derivatives are held to account too.
Check model_check(const ModelConfig& c, Generator& gen) {
  auto model = std::make_shared<T6Model>(c);
  model->to(DType::F64);
  model->fill_uniform(gen, 0.5);
  const int64_t T = std::min<int64_t>(c.block_size, 5);
  std::vector<int32_t> ids(2 * T), targets(2 * T);
  std::vector<double> weights(2 * T);
  for (int64_t i = 0; i < 2 * T; ++i) {
    ids[i] = static_cast<int32_t>(gen.below(c.vocab_size));
    targets[i] = i == 3 ? -1 : static_cast<int32_t>(gen.below(c.vocab_size));
    weights[i] = gen.normal();
  }
  const Tensor idx = from_ints(ids, {2, T}), tgt = from_ints(targets, {2, T});
  const auto loss = [model, idx, tgt, weights](const std::vector<Tensor>&) {
    return weighted_cross_entropy(model->forward(idx).logits, tgt, weights);
  };
  // Element by element up to 512 elements per parameter (every parameter of the tiny default models),
  // along random directions beyond: a config-sized model stays a matter of seconds.
  GradcheckOptions options;
  options.max_elements_per_input = 512;
  // The rounding noise grows with the sizes of the loss's terms, Σ|w_i|·CE_i, not with their sum: the
  // tiny default models have terms of about 20 in all and err by at most 7e-10 (atol 2e-9 to 3.4e-9);
  // configs/demo.json has 110 and checks large directional derivatives, held by rtol.
  double magnitude = 0.0;
  {
    NoGradGuard no_grad;
    const double mean_loss = model->forward(idx, tgt).loss.item();
    for (int64_t i = 0; i < 2 * T; ++i) magnitude += targets[i] == -1 ? 0.0 : std::fabs(weights[i]) * mean_loss;
  }
  options.atol = 1.5e-10 * std::max(1.0, magnitude);
  return {cat("model (", c.attention_name(), ", every parameter)"), loss, model->parameters(), options};
}

}  // namespace

// Each derivative checked costs two float64 forward passes of the whole model, and a pass costs about
// as much as the parameters: configs/demo.json (2.8M parameters) takes about 20 s on 2 cores, the
// paper's small T6 (124M) over a quarter of an hour. Beyond this the check is refused, not started.
constexpr int64_t kMaxGradcheckParameters = 20'000'000;

int run_gradcheck_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const ParsedArgs a("gradcheck", args, {{"--config"}, {"--json", false}, {"--help", false}});
  if (a.has("--help")) {
    out << kHelp;
    return 0;
  }
  Generator gen(2024);
  std::vector<Check> checks = op_checks(gen);
  if (a.has("--config")) {
    const ModelConfig config = read_model_config(a.get("--config"));
    const int64_t parameters = parameter_total(config);
    T6_CHECK(parameters <= kMaxGradcheckParameters, a.get("--config"), ": a float64 gradient check of ", parameters,
             " parameters would run for hours (two forward passes of the whole model per derivative); check a model "
             "of the same attention with fewer layers and a smaller width instead — configs/demo.json (2.8M "
             "parameters) takes about 20 s — or run `t6 gradcheck` without --config for every variant");
    checks.push_back(model_check(config, gen));
  } else {
    for (const std::string& name : attention_kind_names().names())
      checks.push_back(model_check(tiny(*attention_kind_names().find(name)), gen));
  }
  bool all_passed = true;
  nlohmann::json rows = nlohmann::json::array();
  char line[200];
  if (!a.has("--json")) {
    std::snprintf(line, sizeof line, "%-38s %12s %12s %8s %10s %7s  %s\n", "op", "max abs err", "max rel err", "checked",
                  "resolution", "below", "result");
    out << line;
  }
  for (const Check& check : checks) {
    err << "checking " << check.name << "...\n" << std::flush;
    const GradcheckResult r = gradcheck(check.f, check.inputs, check.options);
    all_passed = all_passed && r.passed;
    if (a.has("--json")) {
      rows.push_back({{"op", check.name}, {"max_abs_error", r.max_abs_error}, {"max_rel_error", r.max_rel_error},
                      {"derivatives", r.derivatives_checked}, {"resolution", r.resolution},
                      {"below_resolution", r.below_resolution}, {"passed", r.passed}});
    } else {
      std::snprintf(line, sizeof line, "%-38s %12.2e %12.2e %8lld %10.1e %7lld  %s\n", check.name.c_str(),
                    r.max_abs_error, r.max_rel_error, static_cast<long long>(r.derivatives_checked), r.resolution,
                    static_cast<long long>(r.below_resolution), r.passed ? "pass" : "FAIL");
      out << line;
      if (!r.passed) out << "    " << r.summary() << "\n";
    }
  }
  if (a.has("--json")) {
    out << nlohmann::json{{"checks", rows}, {"passed", all_passed}}.dump(2) << "\n";
  } else {
    out << (all_passed ? "all gradient checks passed\n" : "SOME GRADIENT CHECKS FAILED\n");
  }
  return all_passed ? 0 : 1;
}

}  // namespace t6
