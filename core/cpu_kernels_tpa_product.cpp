// TPA's per-token factor product on the CPU, the twin of cuda/kernels_tpa_product.cu: every token n
// turns its factors a[n] (H×R) and b[n] (R×dh) into its heads, out[n] = scale · a[n]·b[n] (H×dh).
// R is 1 to a few, so each product is a handful of multiply-adds per output; plain loops over the
// tokens, split across threads, beat calling BLAS once per token.
#include "core/cpu_kernels.h"

namespace t6::cpu {

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
      for (int64_t j = 0; j < dh; ++j) row[j] = 0;
      for (int64_t r = 0; r < R; ++r) {
        const T w = scale * an[h * R + r];
        for (int64_t j = 0; j < dh; ++j) row[j] += w * bn[r * dh + j];
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
        // forward: out[h,j] = scale · Σ_r a[h,r]·b[r,j], so ga[h,r] = scale · Σ_j g[h,j]·b[r,j] ...
        T dot = 0;
        for (int64_t j = 0; j < dh; ++j) dot += g_row[j] * bn[r * dh + j];
        gan[h * R + r] = scale * dot;
        // ... and gb[r,j] = scale · Σ_h a[h,r]·g[h,j]
        const T w = scale * an[h * R + r];
        for (int64_t j = 0; j < dh; ++j) gbn[r * dh + j] += w * g_row[j];
      }
    }
  }
}

template void tpa_product_forward<float>(const Backend::TPAProduct&, const float*, const float*, float*);
template void tpa_product_forward<double>(const Backend::TPAProduct&, const double*, const double*, double*);
template void tpa_product_backward<float>(const Backend::TPAProduct&, const float*, const float*, const float*,
                                          float*, float*);
template void tpa_product_backward<double>(const Backend::TPAProduct&, const double*, const double*, const double*,
                                           double*, double*);

}  // namespace t6::cpu
