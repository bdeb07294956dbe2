// Fused causal attention, forward and backward, float32 and float64: the reference for the CUDA
// kernels' parity tests (cuda/kernels_flash_attention.cu) and for the float64 gradient checks. Like
// them it never stores the [Tq, Tk] probability matrix: forward keeps one row of scores at a time and
// saves lse (the log of each row's softmax denominator); backward recomputes each probability from q,
// k and lse. This backend does not prefer it (prefers_fused_attention is false): at the context lengths
// a CPU trains at, the composite path of two BLAS products around a softmax (nn/causal_attention.cpp)
// is faster.
//
// Shapes (all contiguous): q, out, gout, gq (B,Tq,H,dh); k, v, gk, gv (B,Tk,Hkv,dh); lse (B,H,Tq).
// Query i sits at position i + Tk − Tq and sees keys j ≤ that position.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"

namespace t6::cpu {

namespace {

template <class T>
T dot(const T* a, const T* b, int64_t n) {
  T s = 0;
  for (int64_t d = 0; d < n; ++d) s += a[d] * b[d];
  return s;
}

template <class T>
void flash_attention_forward(const Backend::FlashAttention& p, const T* q, const T* k, const T* v, T* out, T* lse) {
  const int64_t B = p.batch, Tq = p.q_len, Tk = p.kv_len, H = p.heads, Hkv = p.kv_heads, dh = p.head_dim;
  const int64_t group = H / Hkv, offset = Tk - Tq;
#pragma omp parallel
  {
    std::vector<T> scores(static_cast<size_t>(Tk));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t h = 0; h < H; ++h) {
        const int64_t hk = h / group;
        for (int64_t i = 0; i < Tq; ++i) {
          const T* qi = q + ((b * Tq + i) * H + h) * dh;
          const int64_t keys = std::min(i + offset + 1, Tk);  // keys j ≤ the query's position
          T max = -std::numeric_limits<T>::infinity();
          for (int64_t j = 0; j < keys; ++j) {
            scores[j] = static_cast<T>(p.scale) * dot(qi, k + ((b * Tk + j) * Hkv + hk) * dh, dh);  // s_ij = scale·q_i·k_j
            max = std::max(max, scores[j]);
          }
          T* oi = out + ((b * Tq + i) * H + h) * dh;
          std::fill(oi, oi + dh, T(0));
          T sum = 0;
          for (int64_t j = 0; j < keys; ++j) {
            const T e = std::exp(scores[j] - max);  // unnormalised probability
            sum += e;
            const T* vj = v + ((b * Tk + j) * Hkv + hk) * dh;
            for (int64_t d = 0; d < dh; ++d) oi[d] += e * vj[d];
          }
          for (int64_t d = 0; d < dh; ++d) oi[d] /= sum;
          lse[(b * H + h) * Tq + i] = max + std::log(sum);
        }
      }
    }
  }
}

// With P_ij = exp(s_ij − lse_i) and out_i = Σ_j P_ij v_j:
//   gv_j += Σ_i P_ij gout_i                              (out_i = Σ_j P_ij v_j)
//   gP_ij = gout_i · v_j
//   gs_ij = P_ij (gP_ij − D_i),  D_i = Σ_j P_ij gP_ij = gout_i · out_i   (softmax backward)
//   gq_i += scale Σ_j gs_ij k_j,  gk_j += scale Σ_i gs_ij q_i        (s_ij = scale · q_i·k_j)
template <class T>
void flash_attention_backward(const Backend::FlashAttention& p, const T* q, const T* k, const T* v, const T* out,
                              const T* lse, const T* gout, T* gq, T* gk, T* gv) {
  const int64_t B = p.batch, Tq = p.q_len, Tk = p.kv_len, H = p.heads, Hkv = p.kv_heads, dh = p.head_dim;
  const int64_t group = H / Hkv, offset = Tk - Tq;
  const T scale = static_cast<T>(p.scale);
  std::fill(gq, gq + B * Tq * H * dh, T(0));
  std::fill(gk, gk + B * Tk * Hkv * dh, T(0));
  std::fill(gv, gv + B * Tk * Hkv * dh, T(0));
  // One task per (batch row, key/value head): the query heads of a group all add into the same gk
  // and gv rows, so they run inside one task and no two tasks write the same memory.
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t hk = 0; hk < Hkv; ++hk) {
      for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
        for (int64_t i = 0; i < Tq; ++i) {
          const int64_t row = (b * Tq + i) * H + h;
          const T* qi = q + row * dh;
          const T* gi = gout + row * dh;
          T* gqi = gq + row * dh;
          const T D = dot(gi, out + row * dh, dh);
          const T lse_i = lse[(b * H + h) * Tq + i];
          const int64_t keys = std::min(i + offset + 1, Tk);
          for (int64_t j = 0; j < keys; ++j) {
            const int64_t kv_row = (b * Tk + j) * Hkv + hk;
            const T* kj = k + kv_row * dh;
            const T* vj = v + kv_row * dh;
            const T prob = std::exp(scale * dot(qi, kj, dh) - lse_i);  // P_ij, recomputed
            const T gs = prob * (dot(gi, vj, dh) - D);                 // gs_ij = P_ij (gP_ij − D_i)
            T* gkj = gk + kv_row * dh;
            T* gvj = gv + kv_row * dh;
            for (int64_t d = 0; d < dh; ++d) {
              gvj[d] += prob * gi[d];
              gqi[d] += scale * gs * kj[d];
              gkj[d] += scale * gs * qi[d];
            }
          }
        }
      }
    }
  }
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
  dispatch_float("flash_attention_forward", q.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::flash_attention_forward(p, ptr<const T>(q), ptr<const T>(k), ptr<const T>(v), ptr<T>(out), ptr<T>(lse));
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
  dispatch_float("flash_attention_backward", q.dtype(), [&](auto t) {
    using T = decltype(t);
    cpu::flash_attention_backward(p, ptr<const T>(q), ptr<const T>(k), ptr<const T>(v), ptr<const T>(out),
                                  ptr<const T>(lse), ptr<const T>(gout), ptr<T>(gq), ptr<T>(gk), ptr<T>(gv));
  });
}

}  // namespace t6::cpu
