// Rotary position embedding (the spec's half-split RoPE, base 10000) and its inverse, float32 and
// float64, over x viewed [P, inner, dh]: the cos and sin of each distinct position are computed once
// (a table) and rotate its `inner` rows, a vectorised loop over each row's halves. y may alias x.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"
#include "core/cpu/rotation_table.h"

namespace t6::cpu {

namespace {

template <class T>
void rope(const T* x, const int32_t* positions, T* y, int64_t P, int64_t inner, int64_t dh, bool inverse) {
  const int64_t half = dh / 2;
  const RotationTable<T> table(positions, P, dh, inverse ? T(-1) : T(1));
#pragma omp parallel for if (parallel : P * inner * dh > kParallelElements)
  for (int64_t p = 0; p < P; ++p) {
    const T* c = table.row(positions, p, dh);
    for (int64_t row = 0; row < inner; ++row) {
      rotate_row(x + (p * inner + row) * dh, y + (p * inner + row) * dh, c, half);
    }
  }
}

}  // namespace

void CpuBackend::rope(const Tensor& x, const Tensor& positions, Tensor& y, int64_t inner, bool inverse) {
  const auto timing = timer_.time("rope");
  const int64_t dh = row_length(x), P = positions.numel();
  expect("rope", {{"positions", positions}}, DType::I32);
  expect("rope", {{"x", x}, {"y", y}}, x.dtype(), P * inner * dh);
  T6_CHECK(dh % 2 == 0, "cpu rope: head dimension ", dh, " must be even (RoPE rotates its two halves)");
  dispatch_float("rope", x.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::rope(ptr<const T>(x), ptr<const int32_t>(positions), ptr<T>(y), P, inner, dh, inverse);
  });
}

}  // namespace t6::cpu
