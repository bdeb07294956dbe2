// Embedding lookup (forward: gather rows of the weight) and its gradient (scatter-add rows, repeated ids
// accumulating), float32 and float64. Ids are in host memory and checked before either loop runs, so
// a bad one throws at once (checks_ids_at_once() holds here; core/backend.h, "deferred errors").
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"

namespace t6::cpu {

namespace {

template <class T>
void embedding_forward(const T* weight, const int32_t* ids, T* out, int64_t n, int64_t dim) {
  const size_t row_bytes = static_cast<size_t>(dim) * sizeof(T);
#pragma omp parallel for if (parallel : n * dim > kParallelElements)
  for (int64_t i = 0; i < n; ++i) std::memcpy(out + i * dim, weight + static_cast<int64_t>(ids[i]) * dim, row_bytes);
}

template <class T>
void embedding_backward(const int32_t* ids, const T* gout, T* gweight, int64_t n, int64_t dim) {
  // Repeated ids add into the same row, so threads split the columns, not the ids: each thread owns
  // whole cache lines of every row and walks all ids in order (race-free and deterministic).
  const int64_t line = 64 / static_cast<int64_t>(sizeof(T));
  const int64_t lines = (dim + line - 1) / line;
#pragma omp parallel if (parallel : n * dim > kParallelElements)
  {
    const int64_t t = omp_get_thread_num(), team = omp_get_num_threads();
    const int64_t c0 = std::min(dim, lines * t / team * line), c1 = std::min(dim, lines * (t + 1) / team * line);
    for (int64_t i = 0; i < n; ++i) {
      const T* g = gout + i * dim;
      T* w = gweight + static_cast<int64_t>(ids[i]) * dim;
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) w[c] += g[c];
    }
  }
}

// The loops index rows with the ids, so every one must lie in [0, limit).
void check_ids(const char* kernel, const Tensor& ids, int64_t limit) {
  const int32_t* p = ptr<const int32_t>(ids);
  for (int64_t i = 0; i < ids.numel(); ++i)
    T6_CHECK(p[i] >= 0 && p[i] < limit, "cpu ", kernel, ": id ", p[i], " at position ", i, " is outside [0, ", limit, ")");
}

}  // namespace

void CpuBackend::embedding_forward(const Tensor& weight, const Tensor& ids, Tensor& out) {
  const auto timing = timer_.time("embedding_forward");
  T6_CHECK(weight.ndim() == 2, "cpu embedding_forward: weight must be [rows, dim], got ", shape_str(weight.shape()));
  const int64_t dim = weight.size(1);
  expect("embedding_forward", {{"ids", ids}}, DType::I32);
  expect("embedding_forward", {{"weight", weight}}, weight.dtype());
  expect("embedding_forward", {{"out", out}}, weight.dtype(), ids.numel() * dim);
  check_ids("embedding_forward", ids, weight.size(0));
  dispatch_float("embedding_forward", weight.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::embedding_forward(ptr<const T>(weight), ptr<const int32_t>(ids), ptr<T>(out), ids.numel(), dim);
  });
}

void CpuBackend::embedding_backward(const Tensor& ids, const Tensor& gout, Tensor& gweight) {
  const auto timing = timer_.time("embedding_backward");
  T6_CHECK(gweight.ndim() == 2, "cpu embedding_backward: gweight must be [rows, dim], got ",
           shape_str(gweight.shape()));
  const int64_t dim = gweight.size(1);
  expect("embedding_backward", {{"ids", ids}}, DType::I32);
  expect("embedding_backward", {{"gweight", gweight}}, gweight.dtype());
  expect("embedding_backward", {{"gout", gout}}, gweight.dtype(), ids.numel() * dim);
  check_ids("embedding_backward", ids, gweight.size(0));
  dispatch_float("embedding_backward", gweight.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::embedding_backward(ptr<const int32_t>(ids), ptr<const T>(gout), ptr<T>(gweight), ids.numel(), dim);
  });
}

}  // namespace t6::cpu
