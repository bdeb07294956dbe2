// Reductions: sum_axis over the middle axis of [outer, n, inner], and sum_of_squares over a list of
// tensors (for global-norm gradient clipping). Every sum accumulates in double and is deterministic
// for a given thread count.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"

namespace t6::cpu {

namespace {

// A sum over [0, n) split into one contiguous range per thread, range_sum(begin, end) summing one;
// the partial sums are added in thread order, so the result does not depend on scheduling.
template <class F>
double parallel_sum(int64_t n, F range_sum) {
  const int threads = n > kParallelElements ? omp_get_max_threads() : 1;
  std::vector<double> partial(static_cast<size_t>(threads), 0.0);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int64_t t = omp_get_thread_num(), team = omp_get_num_threads();
    const int64_t begin = n * t / team, end = n * (t + 1) / team;
    partial[static_cast<size_t>(t)] = range_sum(begin, end);
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

template <class T>
void sum_axis(const T* x, T* y, int64_t outer, int64_t n, int64_t inner) {
  if (inner == 1) {  // sums of contiguous rows
    if (outer == 1) {
      y[0] = static_cast<T>(parallel_sum(n, [x](int64_t b, int64_t e) { return sum_row(x + b, e - b); }));
      return;
    }
#pragma omp parallel for if (parallel : outer * n > kParallelElements)
    for (int64_t o = 0; o < outer; ++o) y[o] = static_cast<T>(sum_row(x + o * n, n));
    return;
  }
  // Columns are summed in blocks, a double accumulator per column, reading each row segment in
  // order. Blocks are narrow enough to give every thread one when there is a single outer slice
  // (the gradient of a bias-like broadcast) and at most kBlock wide to keep the accumulators in L1.
  constexpr int64_t kBlock = 256;
  const int64_t threads = omp_get_max_threads();
  const int64_t per_thread = (inner + threads - 1) / threads;
  const int64_t block = outer >= threads ? kBlock : std::clamp<int64_t>((per_thread + 15) / 16 * 16, 16, kBlock);
  const int64_t blocks = (inner + block - 1) / block;
#pragma omp parallel for if (parallel : outer * n * inner > kParallelElements)
  for (int64_t task = 0; task < outer * blocks; ++task) {
    const int64_t o = task / blocks, c0 = (task % blocks) * block, width = std::min(block, inner - c0);
    double acc[kBlock] = {};
    const T* slice = x + o * n * inner + c0;
    for (int64_t r = 0; r < n; ++r) {
      const T* row = slice + r * inner;
#pragma omp simd
      for (int64_t j = 0; j < width; ++j) acc[j] += static_cast<double>(row[j]);
    }
    T* out = y + o * inner + c0;
    for (int64_t j = 0; j < width; ++j) out[j] = static_cast<T>(acc[j]);
  }
}

template <class T>
double sum_of_squares(const T* x, int64_t n) {
  return parallel_sum(n, [x](int64_t b, int64_t e) { return dot_row(x + b, x + b, e - b); });
}

}  // namespace

void CpuBackend::sum_axis(const Tensor& x, Tensor& y, int64_t outer, int64_t n, int64_t inner) {
  const auto timing = timer_.time("sum_axis");
  T6_CHECK(outer >= 0 && n >= 0 && inner >= 0, "cpu sum_axis: negative extent in [", outer, ", ", n, ", ", inner, "]");
  expect("sum_axis", {{"x", x}}, x.dtype(), outer * n * inner);
  expect("sum_axis", {{"y", y}}, x.dtype(), outer * inner);
  dispatch_float("sum_axis", x.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::sum_axis(ptr<const T>(x), ptr<T>(y), outer, n, inner);
  });
}

double CpuBackend::sum_of_squares(const std::vector<Tensor>& tensors) {
  const auto timing = timer_.time("sum_of_squares");
  double total = 0.0;
  for (const Tensor& t : tensors) {
    expect("sum_of_squares", {{"tensor", t}}, t.dtype());
    dispatch_float("sum_of_squares", t.dtype(), [&](auto e) {
      using T = decltype(e);
      total += cpu::sum_of_squares(ptr<const T>(t), t.numel());
    });
  }
  return total;
}

}  // namespace t6::cpu
