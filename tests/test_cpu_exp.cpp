// exp_fast (core/cpu/kernel_utils.h), the vectorisable e^x of the CPU kernels' hot loops: within 1e-7
// relative of e^x over the normal range, and exp's answers at the edges (0 below e^-86, +inf past the
// largest float, NaN for NaN), also for inputs far outside that range.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/cpu/kernel_utils.h"

using t6::cpu::exp_fast;

TEST_CASE("exp_fast: float32 within 1e-7 relative of exp from e^-86 to the largest float") {
  double worst = 0.0;
  for (float x = -86.0f; x < 88.72f; x += 0.000977f) {
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::fabs(static_cast<double>(exp_fast(x)) - want) / want);
  }
  CHECK(worst < 1e-7);
  CHECK(exp_fast(0.0f) == 1.0f);
  CHECK(exp_fast(88.7f) == doctest::Approx(std::exp(static_cast<double>(88.7f))).epsilon(1e-6));
}

TEST_CASE("exp_fast: the edges of float32, and float64 is std::exp") {
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(exp_fast(-inf) == 0.0f);
  CHECK(exp_fast(-90.0f) == 0.0f);  // e^-90 is subnormal
  CHECK(exp_fast(-1e30f) == 0.0f);
  CHECK(exp_fast(-1e7f) == 0.0f);  // where x / ln2 no longer rounds to an integer in float32
  CHECK(exp_fast(89.0f) == inf);
  CHECK(exp_fast(1e30f) == inf);
  CHECK(exp_fast(1e7f) == inf);
  CHECK(exp_fast(inf) == inf);
  CHECK(std::isnan(exp_fast(std::numeric_limits<float>::quiet_NaN())));
  CHECK(exp_fast(0.3) == std::exp(0.3));
}
