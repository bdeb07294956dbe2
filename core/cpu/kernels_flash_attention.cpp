// Fused causal attention, forward and backward, float32 and float64: the CPU's attention and the
// reference for the CUDA kernels' parity tests (cuda/kernels_flash_attention.cu) and for the float64
// gradient checks. Like them it never stores the [Tq, Tk] probability matrix: forward saves lse (the
// log of each row's softmax denominator) and backward recomputes the probabilities block by block.
//
// A task is one (batch row, head); in backward one (batch row, kv head), since the query heads of a
// group all add into the same gk and gv rows. Inside a task the queries go kQueryRows at a time: the
// block's scores against the keys its last query sees are one BLAS product into a per-thread buffer
// that stays in cache, and so is each of the other products below, so the arithmetic runs in
// OpenBLAS's micro-kernels. Keys after the block's last query are never touched: causal attention
// over n blocks does (n+1)/2n of the full products' work, where the composite path (two batched
// products around a softmax, nn/causal_attention.cpp) computes every score and masks half of them.
//
// Shapes (all contiguous): q, out, gout, gq (B,Tq,H,dh); k, v, gk, gv (B,Tk,Hkv,dh); lse (B,H,Tq).
// Query i sits at position i + Tk − Tq and sees keys j ≤ that position (Tq ≤ Tk: every query sees one).
#include <omp.h>
#include <algorithm>
#include <climits>
#include <cmath>

#include "core/cpu/blas.h"
#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"

namespace t6::cpu {

namespace {

// Query rows per block: small enough that a block's scores (kQueryRows × Tk) stay in L2 at the
// context lengths a CPU trains at, large enough that each product still fills BLAS's micro-kernels.
constexpr int64_t kQueryRows = 64;

// The rows of one head in a (B, T, heads, dh) tensor: row t starts heads·dh after row t − 1, which is
// the leading dimension the products are given, so no head is copied out.
template <class T>
struct HeadRows {
  T* first;
  int ld;
  T* row(int64_t t) const { return first + t * ld; }
};

template <class T>
HeadRows<T> head_rows(T* base, int64_t b, int64_t h, int64_t len, int64_t heads, int64_t dh) {
  return {base + (b * len * heads + h) * dh, static_cast<int>(heads * dh)};
}

// C (m × n, ldc) = alpha · op(A) · op(B) + beta · C.
template <class T>
void product(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int lda, const T* b, int ldb,
             T beta, T* c, int ldc) {
  blas_gemm_call(ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
                 static_cast<int>(n), static_cast<int>(k), alpha, a, lda, b, ldb, beta, c, ldc);
}

// Query rows [first, first + rows) of a task and the keys they see: row r sees keys(r), the block's
// products span the last row's, width.
struct QueryBlock {
  int64_t first, rows, width, offset, kv_len;
  QueryBlock(int64_t first_row, const Backend::FlashAttention& p)
      : first(first_row),
        rows(std::min(kQueryRows, p.q_len - first_row)),
        width(std::min(first_row + rows + p.kv_len - p.q_len, p.kv_len)),
        offset(p.kv_len - p.q_len),
        kv_len(p.kv_len) {}
  int64_t keys(int64_t r) const { return std::min(first + r + offset + 1, kv_len); }
};

// Row r of the block's scores s (rows × width) becomes P_rj = exp(s_rj − shift_r), 0 for the keys
// row r does not see; returns Σ_j P_rj. The forward shifts by the row's max, backward by its lse.
template <class T>
T exponentiate_row(T* s, int64_t keys, int64_t width, T shift) {
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < keys; ++j) {
    s[j] = exp_fast(s[j] - shift);
    sum += s[j];
  }
  std::fill(s + keys, s + width, T(0));
  return sum;
}

// One (batch row, head): s = scale · Q_blk Kᵀ, P = softmax rows, out_blk = P V / Σ, lse = max + log Σ.
template <class T>
void attend_head(const Backend::FlashAttention& p, HeadRows<const T> q, HeadRows<const T> k, HeadRows<const T> v,
                 HeadRows<T> out, T* lse, T* scores) {
  const int64_t dh = p.head_dim;
  for (int64_t first = 0; first < p.q_len; first += kQueryRows) {
    const QueryBlock blk(first, p);
    const int w = static_cast<int>(blk.width);
    product<T>(false, true, blk.rows, blk.width, dh, static_cast<T>(p.scale), q.row(first), q.ld, k.row(0), k.ld, 0,
               scores, w);
    T inverse_sum[kQueryRows];
    for (int64_t r = 0; r < blk.rows; ++r) {
      T* s = scores + r * blk.width;
      const T max = row_max(s, blk.keys(r), T(1));
      const T sum = exponentiate_row(s, blk.keys(r), blk.width, max);
      inverse_sum[r] = T(1) / sum;
      lse[first + r] = max + std::log(sum);
    }
    product<T>(false, false, blk.rows, dh, blk.width, 1, scores, w, v.row(0), v.ld, 0, out.row(first), out.ld);
    for (int64_t r = 0; r < blk.rows; ++r) {
      T* o = out.row(first + r);
      for (int64_t d = 0; d < dh; ++d) o[d] *= inverse_sum[r];
    }
  }
}

template <class T>
void flash_attention_forward(const Backend::FlashAttention& p, const T* q, const T* k, const T* v, T* out, T* lse,
                             T* scratch) {
  const int64_t B = p.batch, Tq = p.q_len, Tk = p.kv_len, H = p.heads, Hkv = p.kv_heads, dh = p.head_dim;
  const int64_t group = H / Hkv;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      T* scores = scratch + omp_get_thread_num() * 2 * kQueryRows * Tk;
      attend_head<T>(p, head_rows(q, b, h, Tq, H, dh), head_rows(k, b, h / group, Tk, Hkv, dh),
                     head_rows(v, b, h / group, Tk, Hkv, dh), head_rows(out, b, h, Tq, H, dh),
                     lse + (b * H + h) * Tq, scores);
    }
  }
}

// The gradients of one query head, added into its kv head's gk and gv. With P_ij = exp(s_ij − lse_i):
//   gv_j += Σ_i P_ij gout_i                              (out_i = Σ_j P_ij v_j)
//   gP_ij = gout_i · v_j
//   gs_ij = P_ij (gP_ij − D_i),  D_i = Σ_j P_ij gP_ij = gout_i · out_i   (softmax backward)
//   gq_i = scale Σ_j gs_ij k_j,  gk_j += scale Σ_i gs_ij q_i            (s_ij = scale · q_i·k_j)
template <class T>
struct HeadGrads {
  HeadRows<const T> q, k, v, out, gout;
  const T* lse;
  HeadRows<T> gq, gk, gv;
};

template <class T>
void attend_head_backward(const Backend::FlashAttention& p, const HeadGrads<T>& a, T* probs, T* gscores) {
  const int64_t dh = p.head_dim;
  const T scale = static_cast<T>(p.scale);
  for (int64_t first = 0; first < p.q_len; first += kQueryRows) {
    const QueryBlock blk(first, p);
    const int w = static_cast<int>(blk.width);
    product<T>(false, true, blk.rows, blk.width, dh, scale, a.q.row(first), a.q.ld, a.k.row(0), a.k.ld, 0, probs, w);
    for (int64_t r = 0; r < blk.rows; ++r)
      exponentiate_row(probs + r * blk.width, blk.keys(r), blk.width, a.lse[first + r]);
    product<T>(true, false, blk.width, dh, blk.rows, 1, probs, w, a.gout.row(first), a.gout.ld, 1, a.gv.row(0),
               a.gv.ld);
    product<T>(false, true, blk.rows, blk.width, dh, 1, a.gout.row(first), a.gout.ld, a.v.row(0), a.v.ld, 0, gscores,
               w);
    for (int64_t r = 0; r < blk.rows; ++r) {
      const T D = static_cast<T>(dot_row(a.gout.row(first + r), a.out.row(first + r), dh));
      const T* P = probs + r * blk.width;
      T* gs = gscores + r * blk.width;
#pragma omp simd
      for (int64_t j = 0; j < blk.width; ++j) gs[j] = scale * P[j] * (gs[j] - D);  // scale · gs_ij
    }
    product<T>(false, false, blk.rows, dh, blk.width, 1, gscores, w, a.k.row(0), a.k.ld, 0, a.gq.row(first), a.gq.ld);
    product<T>(true, false, blk.width, dh, blk.rows, 1, gscores, w, a.q.row(first), a.q.ld, 1, a.gk.row(0), a.gk.ld);
  }
}

template <class T>
void flash_attention_backward(const Backend::FlashAttention& p, const T* q, const T* k, const T* v, const T* out,
                              const T* lse, const T* gout, T* gq, T* gk, T* gv, T* scratch) {
  const int64_t B = p.batch, Tq = p.q_len, Tk = p.kv_len, H = p.heads, Hkv = p.kv_heads, dh = p.head_dim;
  const int64_t group = H / Hkv;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t hk = 0; hk < Hkv; ++hk) {
      T* probs = scratch + omp_get_thread_num() * 2 * kQueryRows * Tk;
      const HeadRows<T> gk_rows = head_rows(gk, b, hk, Tk, Hkv, dh), gv_rows = head_rows(gv, b, hk, Tk, Hkv, dh);
      for (int64_t t = 0; t < Tk; ++t) {
        std::fill(gk_rows.row(t), gk_rows.row(t) + dh, T(0));
        std::fill(gv_rows.row(t), gv_rows.row(t) + dh, T(0));
      }
      for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
        const HeadGrads<T> a{head_rows(q, b, h, Tq, H, dh),    head_rows(k, b, hk, Tk, Hkv, dh),
                             head_rows(v, b, hk, Tk, Hkv, dh), head_rows(out, b, h, Tq, H, dh),
                             head_rows(gout, b, h, Tq, H, dh), lse + (b * H + h) * Tq,
                             head_rows(gq, b, h, Tq, H, dh),   gk_rows,
                             gv_rows};
        attend_head_backward(p, a, probs, probs + kQueryRows * Tk);
      }
    }
  }
}

// Two blocks of scores (kQueryRows × Tk) per thread, allocated before any thread starts, so that a
// context too long for memory is an Error from the allocator, not an exception inside OpenMP.
Tensor score_buffers(const Backend::FlashAttention& p, DType dtype) {
  return empty({static_cast<int64_t>(omp_get_max_threads()), 2, kQueryRows, std::max<int64_t>(p.kv_len, 1)}, dtype,
               Device::CPU);
}

// Every row length and leading dimension handed to BLAS fits in int.
void check_blas_sizes(const char* kernel, const Backend::FlashAttention& p) {
  T6_CHECK(p.kv_len <= INT_MAX && p.heads * p.head_dim <= INT_MAX && p.kv_heads * p.head_dim <= INT_MAX, "cpu ",
           kernel, ": ", p.kv_len, " keys of ", p.heads, " heads of ", p.head_dim,
           " exceed BLAS's int sizes; use a shorter context or fewer heads");
}

}  // namespace

void CpuBackend::flash_attention_forward(const FlashAttention& p, const Tensor& q, const Tensor& k, const Tensor& v,
                                         Tensor& out, Tensor& lse) {
  const auto timing = timer_.time("flash_attention_forward");
  const int64_t q_elements = p.batch * p.q_len * p.heads * p.head_dim;
  const int64_t kv_elements = p.batch * p.kv_len * p.kv_heads * p.head_dim;
  expect("flash_attention_forward", {{"q", q}, {"out", out}}, q.dtype(), q_elements);
  expect("flash_attention_forward", {{"k", k}, {"v", v}}, q.dtype(), kv_elements);
  expect("flash_attention_forward", {{"lse", lse}}, q.dtype(), p.batch * p.heads * p.q_len);
  check_blas_sizes("flash_attention_forward", p);
  const Tensor scratch = score_buffers(p, q.dtype());
  dispatch_float("flash_attention_forward", q.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::flash_attention_forward(p, ptr<const T>(q), ptr<const T>(k), ptr<const T>(v), ptr<T>(out), ptr<T>(lse),
                                 ptr<T>(scratch));
  });
}

void CpuBackend::flash_attention_backward(const FlashAttention& p, const Tensor& q, const Tensor& k, const Tensor& v,
                                          const Tensor& out, const Tensor& lse, const Tensor& gout, Tensor& gq,
                                          Tensor& gk, Tensor& gv) {
  const auto timing = timer_.time("flash_attention_backward");
  const int64_t q_elements = p.batch * p.q_len * p.heads * p.head_dim;
  const int64_t kv_elements = p.batch * p.kv_len * p.kv_heads * p.head_dim;
  expect("flash_attention_backward", {{"q", q}, {"out", out}, {"gout", gout}, {"gq", gq}}, q.dtype(), q_elements);
  expect("flash_attention_backward", {{"k", k}, {"v", v}, {"gk", gk}, {"gv", gv}}, q.dtype(), kv_elements);
  expect("flash_attention_backward", {{"lse", lse}}, q.dtype(), p.batch * p.heads * p.q_len);
  check_blas_sizes("flash_attention_backward", p);
  const Tensor scratch = score_buffers(p, q.dtype());
  dispatch_float("flash_attention_backward", q.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::flash_attention_backward(p, ptr<const T>(q), ptr<const T>(k), ptr<const T>(v), ptr<const T>(out),
                                  ptr<const T>(lse), ptr<const T>(gout), ptr<T>(gq), ptr<T>(gk), ptr<T>(gv),
                                  ptr<T>(scratch));
  });
}

}  // namespace t6::cpu
