// TPA's per-token factor product, forward and backward, float32 and float64 (the shapes are in
// core/backend.h): every token n turns its factors a[n] (H×R) and b[n] (R×dh) into its heads,
// out[n] = scale · a[n]·b[n] (H×dh). R is 1 to a few, so each product is a handful of multiply-adds per
// output; plain loops over the tokens, split across threads, beat calling BLAS once per token.
#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"

namespace t6::cpu {

namespace {

template <class T>
void tpa_product_forward(const Backend::TPAProduct& p, const T* a, const T* b, T* out) {
  const int64_t H = p.heads, R = p.rank, dh = p.head_dim;
  const T scale = static_cast<T>(p.scale);
#pragma omp parallel for schedule(static) if (p.tokens * H * dh > kParallelElements)
  for (int64_t n = 0; n < p.tokens; ++n) {
    const T* an = a + n * H * R;  // (H,R)
    const T* bn = b + n * R * dh;  // (R,dh)
    T* on = out + n * H * dh;      // (H,dh)
    for (int64_t h = 0; h < H; ++h) {
      T* row = on + h * dh;
#pragma omp simd
      for (int64_t j = 0; j < dh; ++j) row[j] = 0;
      for (int64_t r = 0; r < R; ++r) {
        const T w = scale * an[h * R + r];
        const T* b_row = bn + r * dh;
#pragma omp simd
        for (int64_t j = 0; j < dh; ++j) row[j] += w * b_row[j];
      }
    }
  }
}

template <class T>
void tpa_product_backward(const Backend::TPAProduct& p, const T* a, const T* b, const T* gout, T* ga, T* gb) {
  const int64_t H = p.heads, R = p.rank, dh = p.head_dim;
  const T scale = static_cast<T>(p.scale);
#pragma omp parallel for schedule(static) if (p.tokens * H * dh > kParallelElements)
  for (int64_t n = 0; n < p.tokens; ++n) {
    const T* an = a + n * H * R;
    const T* bn = b + n * R * dh;
    const T* gn = gout + n * H * dh;
    T* gan = ga + n * H * R;
    T* gbn = gb + n * R * dh;
    for (int64_t i = 0; i < R * dh; ++i) gbn[i] = 0;
    for (int64_t h = 0; h < H; ++h) {
      const T* g_row = gn + h * dh;
      for (int64_t r = 0; r < R; ++r) {
        // forward: out[h,j] = scale · Σ_r a[h,r]·b[r,j], so ga[h,r] = scale · Σ_j g[h,j]·b[r,j] and
        // gb[r,j] = scale · Σ_h a[h,r]·g[h,j]: one pass over the row computes both
        const T* b_row = bn + r * dh;
        T* gb_row = gbn + r * dh;
        const T w = scale * an[h * R + r];
        T dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t j = 0; j < dh; ++j) {
          dot += g_row[j] * b_row[j];
          gb_row[j] += w * g_row[j];
        }
        gan[h * R + r] = scale * dot;
      }
    }
  }
}

}  // namespace

void CpuBackend::tpa_product_forward(const TPAProduct& p, const Tensor& a, const Tensor& b, Tensor& out) {
  const auto timing = timer_.time("tpa_product_forward");
  expect("tpa_product_forward", {{"a", a}}, a.dtype(), p.tokens * p.heads * p.rank);
  expect("tpa_product_forward", {{"b", b}}, a.dtype(), p.tokens * p.rank * p.head_dim);
  expect("tpa_product_forward", {{"out", out}}, a.dtype(), p.tokens * p.heads * p.head_dim);
  dispatch_float("tpa_product_forward", a.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::tpa_product_forward(p, ptr<const T>(a), ptr<const T>(b), ptr<T>(out));
  });
}

void CpuBackend::tpa_product_backward(const TPAProduct& p, const Tensor& a, const Tensor& b, const Tensor& gout,
                                      Tensor& ga, Tensor& gb) {
  const auto timing = timer_.time("tpa_product_backward");
  expect("tpa_product_backward", {{"a", a}, {"ga", ga}}, a.dtype(), p.tokens * p.heads * p.rank);
  expect("tpa_product_backward", {{"b", b}, {"gb", gb}}, a.dtype(), p.tokens * p.rank * p.head_dim);
  expect("tpa_product_backward", {{"gout", gout}}, a.dtype(), p.tokens * p.heads * p.head_dim);
  dispatch_float("tpa_product_backward", a.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::tpa_product_backward(p, ptr<const T>(a), ptr<const T>(b), ptr<const T>(gout), ptr<T>(ga), ptr<T>(gb));
  });
}

}  // namespace t6::cpu
