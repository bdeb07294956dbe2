#include "autograd/gradcheck.h"

#include <cmath>
#include <cstdio>

#include "autograd/ops.h"
#include "core/random.h"

namespace t6 {

namespace {

// Σ g ⊙ f(inputs), evaluated without recording a graph.
double contracted(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
                  const std::vector<double>& g) {
  NoGradGuard no_grad;
  const std::vector<double> y = f(inputs).to_double_vector();
  double total = 0.0;
  for (size_t i = 0; i < y.size(); ++i) total += g[i] * y[i];
  return total;
}

// Pointer to element `index` (row-major over the shape) of a CPU float64 tensor, following its strides.
double* element(const Tensor& t, int64_t index) {
  int64_t offset = 0;
  for (int d = t.ndim() - 1; d >= 0; --d) {
    offset += (index % t.shape()[d]) * t.strides()[d];
    index /= t.shape()[d];
  }
  return t.data<double>() + offset;
}

void record(GradcheckResult& r, const GradcheckOptions& o, int input, int64_t index, bool direction,
            double analytic, double numeric, double& worst_ratio) {
  if (!(std::fabs(numeric) >= r.resolution)) ++r.below_resolution;  // NaN counts as unresolved
  r.smallest_magnitude = r.derivatives_checked == 0 ? std::fabs(numeric)
                                                    : std::min(r.smallest_magnitude, std::fabs(numeric));
  const double abs_error = std::fabs(analytic - numeric);
  const double allowed = o.atol + o.rtol * std::fabs(numeric);
  r.max_abs_error = std::max(r.max_abs_error, abs_error);
  r.max_rel_error = std::max(r.max_rel_error, abs_error / std::max(std::fabs(numeric), o.atol));
  r.passed = r.passed && abs_error <= allowed && std::isfinite(analytic) && std::isfinite(numeric);
  ++r.derivatives_checked;
  const double ratio = std::isfinite(abs_error) ? abs_error / allowed : INFINITY;
  if (ratio >= worst_ratio) {
    worst_ratio = ratio;
    r.worst_input = input;
    r.worst_element = index;
    r.worst_is_direction = direction;
    r.worst_analytic = analytic;
    r.worst_numeric = numeric;
  }
}

}  // namespace

std::string GradcheckResult::summary() const {
  char line[320];
  std::snprintf(line, sizeof line,
                "%s: %lld derivatives, max abs error %.3g, max rel error %.3g; worst: input %d %s %lld "
                "(analytic %.10g, numeric %.10g)",
                passed ? "passed" : "FAILED", static_cast<long long>(derivatives_checked), max_abs_error,
                max_rel_error, worst_input, worst_is_direction ? "direction" : "element",
                static_cast<long long>(worst_element), worst_analytic, worst_numeric);
  char resolved[200];
  std::snprintf(resolved, sizeof resolved,
                "; resolution %.3g: %lld below it (the most: %.0f%% of input %d's), smallest |derivative| %.3g",
                resolution, static_cast<long long>(below_resolution), 100.0 * least_resolved_share,
                least_resolved_input, smallest_magnitude);
  return std::string(line) + resolved;
}

Tensor weighted_cross_entropy(const Tensor& logits, const Tensor& targets, const std::vector<double>& weights) {
  T6_CHECK(static_cast<int64_t>(weights.size()) == targets.numel(), "weighted_cross_entropy: ", weights.size(),
           " weights for ", targets.numel(), " targets");
  const std::vector<int32_t> all = targets.to_vector<int32_t>();
  Tensor total = zeros({}, logits.dtype(), logits.device());
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i] == -1) continue;
    std::vector<int32_t> only(all.size(), -1);  // target i alone counts: the mean over one target is its loss
    only[i] = all[i];
    total = add(total, scale(cross_entropy(logits, from_ints(only, targets.shape(), logits.device())), weights[i]));
  }
  return total;
}

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& o) {
  std::vector<int> checked;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.requires_grad()) continue;
    T6_CHECK(x.dtype() == DType::F64 && x.device() == Device::CPU, "gradcheck: input ", i, " is ",
             dtype_name(x.dtype()), " on ", device_name(x.device()),
             "; gradient checks need float64 CPU tensors (use to_dtype(DType::F64))");
    T6_CHECK(x.is_leaf(), "gradcheck: input ", i, " is not a leaf tensor; pass the leaves f is computed from");
    checked.push_back(static_cast<int>(i));
  }
  T6_CHECK(!checked.empty(), "gradcheck: no input requires grad; mark the inputs with set_requires_grad()");

  // Analytic gradients of L = Σ g ⊙ f(x), computed from a clean slate and then put back.
  Generator gen(o.seed);
  std::vector<Tensor> previous_grads;
  for (int i : checked) {
    previous_grads.push_back(inputs[i].grad());
    inputs[i].impl().grad.reset();
  }
  const Tensor y = f(inputs);
  T6_CHECK(y.requires_grad(), "gradcheck: the function's output does not depend on any checked input");
  std::vector<double> g(static_cast<size_t>(y.numel()));
  for (double& v : g) v = gen.normal();
  y.backward(from_vector(g, y.shape(), y.dtype(), y.device()));
  std::vector<std::vector<double>> analytic;
  for (size_t c = 0; c < checked.size(); ++c) {
    const Tensor& x = inputs[checked[c]];
    analytic.push_back(x.grad().defined() ? x.grad().to_double_vector() : std::vector<double>(x.numel(), 0.0));
    x.impl().grad = previous_grads[c].impl_ptr();
  }

  GradcheckResult result;
  result.resolution = o.atol / o.rtol;
  double worst_ratio = -1.0;
  for (size_t c = 0; c < checked.size(); ++c) {
    const Tensor& x = inputs[checked[c]];
    const int64_t n = x.numel();
    const int64_t checked_before = result.derivatives_checked, below_before = result.below_resolution;
    if (n <= o.max_elements_per_input) {
      for (int64_t i = 0; i < n; ++i) {
        double* p = element(x, i);
        const double original = *p;
        *p = original + o.eps;
        const double plus = contracted(f, inputs, g);
        *p = original - o.eps;
        const double minus = contracted(f, inputs, g);
        *p = original;
        record(result, o, checked[c], i, false, analytic[c][i], (plus - minus) / (2 * o.eps), worst_ratio);
      }
    } else {
      for (int k = 0; k < o.directions; ++k) {
        std::vector<double> v(static_cast<size_t>(n));
        double norm = 0.0;
        for (double& vi : v) {
          vi = gen.normal();
          norm += vi * vi;
        }
        norm = std::sqrt(norm);
        double along = 0.0;  // ⟨analytic gradient, v⟩
        for (int64_t i = 0; i < n; ++i) along += analytic[c][i] * (v[i] /= norm);
        std::vector<double> original(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) original[i] = *element(x, i);
        for (int64_t i = 0; i < n; ++i) *element(x, i) = original[i] + o.eps * v[i];
        const double plus = contracted(f, inputs, g);
        for (int64_t i = 0; i < n; ++i) *element(x, i) = original[i] - o.eps * v[i];
        const double minus = contracted(f, inputs, g);
        for (int64_t i = 0; i < n; ++i) *element(x, i) = original[i];
        record(result, o, checked[c], k, true, along, (plus - minus) / (2 * o.eps), worst_ratio);
      }
    }
    const int64_t count = result.derivatives_checked - checked_before;
    const double share = count == 0 ? 0.0 : static_cast<double>(result.below_resolution - below_before) / count;
    if (result.least_resolved_input < 0 || share > result.least_resolved_share) {
      result.least_resolved_input = checked[c];
      result.least_resolved_share = share;
    }
  }
  return result;
}

}  // namespace t6
