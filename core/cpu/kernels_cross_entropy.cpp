// Fused cross-entropy over rows of logits [N, V] with int32 targets (−1 = ignore), forward and
// backward, float32 and float64; one row per loop iteration. The forward keeps only each row's
// logsumexp for the backward. Targets are in host memory, so a bad one is counted in the same pass and
// thrown at once, in the words of the cross_entropy op (checks_ids_at_once() holds here; core/backend.h,
// "deferred errors"). count_targets gives the mean's divisor.
#include <algorithm>
#include <cmath>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"

namespace t6::cpu {

namespace {

// Returns how many targets are out of range (neither −1 nor in [0, vocab)).
template <class T>
int64_t cross_entropy_forward(const T* logits, const int32_t* targets, T* losses, T* lse, int64_t rows,
                                         int64_t vocab) {
  int64_t out_of_range = 0;
#pragma omp parallel for reduction(+ : out_of_range) if (parallel : rows * vocab > kParallelExpensive)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = logits + r * vocab;
    const double l = logsumexp(xr, vocab);
    const int32_t t = targets[r];
    lse[r] = static_cast<T>(l);
    if (t >= 0 && t < vocab) {
      losses[r] = static_cast<T>(l - static_cast<double>(xr[t]));
    } else {  // ignored (−1) or out of range: no loss; the caller reports the out-of-range count
      losses[r] = T(0);
      out_of_range += t != -1;
    }
  }
  return out_of_range;
}

// G is T, or bfloat16 bits for float32 logits; with G = T, glogits may alias logits.
template <class T, class G>
void cross_entropy_backward(const T* logits, const int32_t* targets, const T* lse, const T* grad_losses,
                            G* glogits, int64_t rows, int64_t vocab) {
#pragma omp parallel for if (parallel : rows * vocab > kParallelExpensive)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = logits + r * vocab;
    G* out = glogits + r * vocab;
    const int32_t t = targets[r];
    if (t < 0 || t >= vocab) {
#pragma omp simd
      for (int64_t j = 0; j < vocab; ++j) out[j] = narrow<G>(T(0));
      continue;
    }
    const T g = grad_losses[r], l = lse[r];
    const T at_target = g * exp_fast(xr[t] - l) - g;  // read before an aliased write overwrites it
#pragma omp simd
    for (int64_t j = 0; j < vocab; ++j) out[j] = narrow<G>(g * exp_fast(xr[j] - l));
    out[t] = narrow<G>(at_target);
  }
}

}  // namespace

void CpuBackend::cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& losses, Tensor& lse) {
  const auto timing = timer_.time("cross_entropy_forward");
  const int64_t vocab = row_length(logits), rows = row_count(logits);
  expect("cross_entropy_forward", {{"logits", logits}}, logits.dtype());
  expect("cross_entropy_forward", {{"targets", targets}}, DType::I32, rows);
  expect("cross_entropy_forward", {{"losses", losses}, {"lse", lse}}, logits.dtype(), rows);
  int64_t out_of_range = 0;
  dispatch_float("cross_entropy_forward", logits.dtype(), [&](auto t) {
    using T = decltype(t);
    out_of_range = cpu::cross_entropy_forward(ptr<const T>(logits), ptr<const int32_t>(targets), ptr<T>(losses),
                                              ptr<T>(lse), rows, vocab);
  });
  // The data's mistake, not the caller's: named in the words of the cross_entropy op (backend.h).
  T6_CHECK(out_of_range == 0, "cross_entropy: ", out_of_range, " target ids lie outside [-1, ", vocab,
           "); every target must be a token id below vocab_size or -1 (ignored)");
}

void CpuBackend::cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                        const Tensor& grad_losses, Tensor& glogits) {
  const auto timing = timer_.time("cross_entropy_backward");
  const int64_t vocab = row_length(logits), rows = row_count(logits);
  expect("cross_entropy_backward", {{"logits", logits}}, logits.dtype(), logits.numel());
  expect("cross_entropy_backward", {{"glogits", glogits}}, glogits.dtype(), logits.numel());
  expect("cross_entropy_backward", {{"targets", targets}}, DType::I32, rows);
  expect("cross_entropy_backward", {{"lse", lse}, {"grad_losses", grad_losses}}, logits.dtype(), rows);
  dispatch_float_output("cross_entropy_backward", logits.dtype(), glogits.dtype(), [&](auto t, auto g) {
    using T = decltype(t);
    cpu::cross_entropy_backward(ptr<const T>(logits), ptr<const int32_t>(targets), ptr<const T>(lse),
                                ptr<const T>(grad_losses), ptr<decltype(g)>(glogits), rows, vocab);
  });
}

void CpuBackend::count_targets(const Tensor& targets, int64_t vocab, Tensor& divisor) {
  const auto timing = timer_.time("count_targets");
  expect("count_targets", {{"targets", targets}}, DType::I32, targets.numel());
  expect("count_targets", {{"divisor", divisor}}, divisor.dtype(), 1);
  const int32_t* t = ptr<const int32_t>(targets);
  int64_t counted = 0;
  for (int64_t i = 0; i < targets.numel(); ++i) counted += t[i] >= 0 && t[i] < vocab;
  dispatch_float("count_targets", divisor.dtype(),
                 [&](auto zero) { *ptr<decltype(zero)>(divisor) = static_cast<decltype(zero)>(std::max<int64_t>(1, counted)); });
}

}  // namespace t6::cpu
