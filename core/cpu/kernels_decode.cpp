// The fused decode step's kernels (core/backend.h, "fused decode step"), the twins of
// cuda/kernels_decode.cu and the CPU's own decode path: the few rows of a decode step times a weight
// (float32, float64 or its bfloat16 decode copy), then the folded-in work (rms_norm's scale, a residual,
// SwiGLU, or TPA's RoPE and cache writes) on the products.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"
#include "core/cpu/rotation_table.h"

namespace t6::cpu {

namespace {

inline double widen(float w) { return w; }
inline double widen(double w) { return w; }
inline double widen(uint16_t bf16_bits) { return bf16_to_float(bf16_bits); }

// y[b·N + n] = scale[b] · Σ_k w[n,k] x[b,k] for x (B,K) and w (N,K): the backend's BLAS product where w
// has x's dtype (the CPU's own decode path), a loop accumulating in double for bfloat16 weights.
template <class T, class W>
std::vector<double> products(Backend& cpu, const Tensor& x, const Tensor& w, int64_t B, int64_t N, int64_t K,
                             const std::vector<double>& scale) {
  std::vector<double> y(static_cast<size_t>(B * N));
  if constexpr (std::is_same_v<T, W>) {
    Tensor xw = empty({B, N}, x.dtype());
    Backend::Gemm g;
    g.trans_b = true, g.m = B, g.n = N, g.k = K, g.lda = K, g.ldb = K, g.ldc = N;
    cpu.gemm(g, x, w, xw);
    const T* p = ptr<const T>(xw);
    for (int64_t i = 0; i < B * N; ++i) y[i] = scale[i / N] * static_cast<double>(p[i]);
  } else {
    const T* xs = ptr<const T>(x);
    const W* ws = ptr<const W>(w);
#pragma omp parallel for if (parallel : B * N * K > kParallelElements)
    for (int64_t n = 0; n < N; ++n) {
      const W* wn = ws + n * K;
      for (int64_t b = 0; b < B; ++b) {
        const T* xb = xs + b * K;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int64_t k = 0; k < K; ++k) s += widen(wn[k]) * static_cast<double>(xb[k]);
        y[b * N + n] = scale[b] * s;
      }
    }
  }
  return y;
}

// Per row of x (B,K): rstd = 1/sqrt(mean(x²) + eps) with norm_eps, else 1 (x is used as it is).
template <class T>
std::vector<double> row_scales(const T* x, int64_t B, int64_t K, std::optional<double> norm_eps) {
  std::vector<double> scale(static_cast<size_t>(B), 1.0);
  if (!norm_eps) return scale;
  for (int64_t b = 0; b < B; ++b) {
    const T rstd = T(1) / std::sqrt(static_cast<T>(dot_row(x + b * K, x + b * K, K) / static_cast<double>(K)) +
                                    static_cast<T>(*norm_eps));
    scale[b] = static_cast<double>(rstd);
  }
  return scale;
}

// Calls f(T{}, W{}) with T the type of x (float or double) and W the weight's: T, or the bits of bfloat16.
template <class F>
void dispatch_decode(const char* kernel, DType x, DType w, F&& f) {
  dispatch_float(kernel, x, [&](auto t) {
    using T = decltype(t);
    if (w == DType::BF16) f(T{}, uint16_t{});
    else if (w == x) f(T{}, T{});
    else throw Error(cat("cpu ", kernel, ": weights of ", dtype_name(w), " with activations of ", dtype_name(x),
                         "; the weights must be bfloat16 or the activations' dtype"));
  });
}

void expect_weight(const char* kernel, const char* name, const Tensor& w, DType x, int64_t rows, int64_t K) {
  expect(kernel, {{name, w}}, w.dtype(), rows * K);
  T6_CHECK(w.dtype() == DType::BF16 || w.dtype() == x, "cpu ", kernel, ": ", name, " is ", dtype_name(w.dtype()),
           "; it must be bfloat16 or ", dtype_name(x), " like x");
}

}  // namespace

void CpuBackend::decode_linear(const Tensor& x, const Tensor& w, const Tensor& residual, std::optional<double> norm_eps,
                               Tensor& out) {
  const auto timing = timer_.time("decode_linear");
  const int64_t K = row_length(x), B = row_count(x), N = row_length(out);
  expect("decode_linear", {{"x", x}}, x.dtype(), B * K);
  expect("decode_linear", {{"out", out}}, x.dtype(), B * N);
  if (residual.defined()) expect("decode_linear", {{"residual", residual}}, x.dtype(), B * N);
  expect_weight("decode_linear", "w", w, x.dtype(), N, K);
  dispatch_decode("decode_linear", x.dtype(), w.dtype(), [&](auto t, auto wt) {
    using T = decltype(t);
    using W = decltype(wt);
    const T* xs = ptr<const T>(x);
    const std::vector<double> y = products<T, W>(*this, x, w, B, N, K, row_scales(xs, B, K, norm_eps));
    const T* r = residual.defined() ? ptr<const T>(residual) : nullptr;
    T* o = ptr<T>(out);
    for (int64_t i = 0; i < B * N; ++i) o[i] = static_cast<T>((r ? static_cast<double>(r[i]) : 0.0) + y[i]);
  });
}

void CpuBackend::decode_swiglu(const Tensor& x, const Tensor& gate, const Tensor& up, std::optional<double> norm_eps,
                               Tensor& out) {
  const auto timing = timer_.time("decode_swiglu");
  const int64_t K = row_length(x), B = row_count(x), F = row_length(out);
  expect("decode_swiglu", {{"x", x}}, x.dtype(), B * K);
  expect("decode_swiglu", {{"out", out}}, x.dtype(), B * F);
  expect_weight("decode_swiglu", "gate", gate, x.dtype(), F, K);
  expect_weight("decode_swiglu", "up", up, x.dtype(), F, K);
  T6_CHECK(gate.dtype() == up.dtype(), "cpu decode_swiglu: gate is ", dtype_name(gate.dtype()), " but up ",
           dtype_name(up.dtype()));
  dispatch_decode("decode_swiglu", x.dtype(), gate.dtype(), [&](auto t, auto wt) {
    using T = decltype(t);
    using W = decltype(wt);
    const T* xs = ptr<const T>(x);
    const std::vector<double> scale = row_scales(xs, B, K, norm_eps);
    const std::vector<double> g = products<T, W>(*this, x, gate, B, F, K, scale);
    const std::vector<double> u = products<T, W>(*this, x, up, B, F, K, scale);
    T* o = ptr<T>(out);
    for (int64_t i = 0; i < B * F; ++i) {
      const T gi = static_cast<T>(g[i]);
      o[i] = gi / (T(1) + std::exp(-gi)) * static_cast<T>(u[i]);  // silu(g)·u
    }
  });
}

namespace {

// x[b] = embedding[tokens[b]] for the step's tokens, each checked against the vocabulary.
template <class T>
void look_up(const Tensor& embedding, const Tensor& tokens, int64_t B, int64_t K, Tensor& x) {
  expect("decode_tpa_factors", {{"tokens", tokens}}, DType::I32, B);
  T6_CHECK(embedding.ndim() == 2 && embedding.size(1) == K && embedding.dtype() == x.dtype(),
           "cpu decode_tpa_factors: the embedding must be (V, ", K, ") of ", dtype_name(x.dtype()), ", got ",
           dtype_name(embedding.dtype()), " ", shape_str(embedding.shape()));
  const int64_t V = embedding.size(0);
  const int32_t* ids = ptr<const int32_t>(tokens);
  for (int64_t b = 0; b < B; ++b) {
    T6_CHECK(ids[b] >= 0 && ids[b] < V, "cpu decode_tpa_factors: token ", ids[b], " of row ", b,
             " is outside the embedding's ", V, " rows");
    std::copy_n(ptr<const T>(embedding.contiguous_data()) + ids[b] * K, K, ptr<T>(x) + b * K);
  }
}

}  // namespace

void CpuBackend::decode_tpa_factors(const TPAFactors& p, Tensor& x, const Tensor& embedding, const Tensor& tokens,
                                    const Tensor& w, const Tensor& positions, Tensor& a_q, Tensor& q, Tensor& a_k,
                                    Tensor& b_k, Tensor& a_v, Tensor& b_v) {
  const auto timing = timer_.time("decode_tpa_factors");
  const int64_t B = p.batch, H = p.heads, RQ = p.q_rank, R = p.rank, dh = p.head_dim, M = p.capacity, K = p.d;
  const int64_t aq_rows = H * RQ, a_rows = H * R, b_rows = R * dh, q_rows = RQ > 0 ? RQ * dh : H * dh;
  const int64_t N = aq_rows + 2 * a_rows + 2 * b_rows + q_rows;
  const DType dt = x.dtype(), out = q.dtype() == DType::BF16 ? DType::BF16 : dt;
  expect("decode_tpa_factors", {{"x", x}}, dt, B * K);
  expect_weight("decode_tpa_factors", "w", w, dt, N, K);
  expect("decode_tpa_factors", {{"positions", positions}}, DType::I32, B);
  expect("decode_tpa_factors", {{"q", q}}, out, B * q_rows);
  if (RQ > 0) expect("decode_tpa_factors", {{"a_q", a_q}}, out, B * aq_rows);
  expect("decode_tpa_factors", {{"a_k", a_k}, {"a_v", a_v}}, out, B * M * a_rows);
  expect("decode_tpa_factors", {{"b_k", b_k}, {"b_v", b_v}}, out, B * M * b_rows);
  T6_CHECK(dh % 2 == 0, "cpu decode_tpa_factors: head dimension ", dh, " must be even (RoPE rotates its two halves)");
  const int32_t* pos = ptr<const int32_t>(positions);
  for (int64_t b = 0; b < B; ++b)
    T6_CHECK(pos[b] >= 0 && pos[b] < M, "cpu decode_tpa_factors: position ", pos[b], " of row ", b,
             " is outside the cache of ", M, " slots");
  dispatch_decode("decode_tpa_factors", dt, w.dtype(), [&](auto t, auto wt) {
    using T = decltype(t);
    using W = decltype(wt);
    if (embedding.defined()) look_up<T>(embedding, tokens, B, K, x);
    const T* xs = ptr<const T>(x);
    const std::vector<double> y = products<T, W>(*this, x, w, B, N, K, row_scales(xs, B, K, p.norm_eps));
    const RotationTable<T> table(pos, B, dh, T(1));
    auto store = [&](auto ot) {
      using O = decltype(ot);
      std::vector<T> row(static_cast<size_t>(std::max(q_rows, std::max(aq_rows, std::max(a_rows, b_rows)))));
      // Stores `rows` products of row b from column `from` at dst, rotating each length-dh row if asked.
      auto put = [&](int64_t b, int64_t from, int64_t rows, O* dst, bool rotated) {
        for (int64_t i = 0; i < rows; ++i) row[i] = static_cast<T>(y[b * N + from + i]);
        if (rotated)
          for (int64_t r = 0; r < rows / dh; ++r) rotate_row(&row[r * dh], &row[r * dh], table.row(pos, b, dh), dh / 2);
        for (int64_t i = 0; i < rows; ++i) dst[i] = narrow<O>(row[i]);
      };
      for (int64_t b = 0; b < B; ++b) {
        const int64_t slot = b * M + pos[b];
        int64_t at = 0;
        if (RQ > 0) put(b, at, aq_rows, ptr<O>(a_q) + b * aq_rows, false);
        put(b, at += aq_rows, a_rows, ptr<O>(a_k) + slot * a_rows, false);
        put(b, at += a_rows, a_rows, ptr<O>(a_v) + slot * a_rows, false);
        put(b, at += a_rows, b_rows, ptr<O>(b_v) + slot * b_rows, false);
        put(b, at += b_rows, q_rows, ptr<O>(q) + b * q_rows, true);
        put(b, at += q_rows, b_rows, ptr<O>(b_k) + slot * b_rows, true);
      }
    };
    if (out == DType::BF16) store(uint16_t{});
    else store(T{});
  });
}

}  // namespace t6::cpu
