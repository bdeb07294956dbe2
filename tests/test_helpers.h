// Small helpers shared by the test files: random tensors and closeness checks.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/random.h"
#include "skip_unless.h"

namespace t6::testing {

// A random float64 leaf requiring grad, uniform in [low, high).
inline Tensor random_leaf(const Shape& shape, Generator& gen, double low = -1.0, double high = 1.0,
                          DType dtype = DType::F64) {
  Tensor t = uniform(shape, low, high, gen, dtype);
  t.set_requires_grad(true);
  return t;
}

// Values pushed away from zero (|v| in [0.5, 1.5), random sign): keeps inputs away from kinks such
// as log/sqrt/div at 0.
inline Tensor random_away_from_zero(const Shape& shape, Generator& gen, bool positive_only = false) {
  std::vector<double> v(static_cast<size_t>(numel_of(shape)));
  for (double& x : v) {
    x = 0.5 + gen.uniform();
    if (!positive_only && gen.uniform() < 0.5) x = -x;
  }
  Tensor t = from_vector(v, shape, DType::F64);
  t.set_requires_grad(true);
  return t;
}

// max |a − b| / max(1, |b|) over all elements, with b the reference.
inline double max_scaled_error(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]) / std::max(1.0, std::fabs(b[i])));
  return worst;
}

inline void check_close(const Tensor& actual, const std::vector<double>& expected, double tol) {
  REQUIRE(actual.numel() == static_cast<int64_t>(expected.size()));
  CHECK(max_scaled_error(actual.to_double_vector(), expected) <= tol);
}

// n token ids drawn uniformly from [0, vocab).
inline std::vector<int32_t> random_token_ids(int64_t n, int64_t vocab, Generator& gen) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& id : ids) id = static_cast<int32_t>(gen.below(static_cast<uint64_t>(vocab)));
  return ids;
}

// A (B,T) int32 tensor of random token ids below vocab.
inline Tensor random_token_tensor(int64_t B, int64_t T, int64_t vocab, Generator& gen) {
  return from_ints(random_token_ids(B * T, vocab, gen), {B, T});
}

// Runs the library's gradient check with the suite's standard tolerances and reports the summary.
inline void check_gradients(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                            const std::vector<Tensor>& inputs) {
  const GradcheckResult r = gradcheck(f, inputs);
  INFO(r.summary());
  CHECK(r.passed);
  CHECK(r.derivatives_checked > 0);
}

}  // namespace t6::testing
