// FlashTPA decode attention (paper Algorithm 2; spec "Inference with the factorized KV cache"), float32
// and float64, and bfloat16 factors widened to float32: the new token's query meets the cached key/value
// factors directly, so no K or V head is ever formed. Per cached token m the work is
//   s1[r,s]   = <B_q[r], B_k[m,s]>                          RQ·R·dh   (shared by every head)
//   logit[h]  = Σ_s A_k[m,h,s] Σ_r A_q[h,r] s1[r,s]         H·RQ·R
//   acc[h]   += p[h] Σ_u A_v[m,h,u] B_v[m,u]                 H·R·dh
// against 2·H·dh for attention over full heads, and the factors read per token are 2R(H + dh) numbers
// instead of 2·H·dh.
//
// Softmax is online (running max, running sum, rescaled accumulator) over tiles of cached tokens. The
// cache of each row is cut into fixed chunks that run in parallel, each with its own softmax state,
// merged at the end (split-K, as in flash-decoding): a batch of one long row still uses every core,
// and since the chunking does not depend on the thread count, neither do the results.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/kernel_utils.h"

namespace t6::cpu {

namespace {

constexpr int64_t kChunk = 256;  // cached tokens per parallel task
constexpr int64_t kTile = 32;    // tokens whose logits are formed before one online-softmax update

// The softmax state of one (row, chunk) task: per head the running max, the running sum of
// exp(logit − max), and Σ exp(logit − max) · value.
template <class T>
struct Partial {
  T* max;  // [H]
  T* sum;  // [H]
  T* acc;  // [H, dh]
};

template <class T>
T dot(const T* x, const T* y, int64_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}

// Cached tokens [begin, end) of row b into `state`, which starts empty.
template <class T>
void attend_chunk(const Backend::TPADecode& p, int64_t b, int64_t begin, int64_t end, const T* a_q, const T* b_q,
                  const T* a_k, const T* b_k, const T* a_v, const T* b_v, Partial<T> state) {
  const int64_t H = p.heads, RQ = p.q_rank, R = p.rank, dh = p.head_dim, M = p.capacity;
  const bool factorized = RQ > 0;
  const T* aq = factorized ? a_q + b * H * RQ : nullptr;            // [H,RQ]
  const T* bq = b_q + b * (factorized ? RQ : H) * dh;                // [RQ,dh], or the heads [H,dh]
  std::vector<T> logits(static_cast<size_t>(H * kTile));           // [H, tile]
  std::vector<T> s1(static_cast<size_t>(std::max<int64_t>(RQ, 1) * R));  // [RQ,R]
  std::fill(state.max, state.max + H, -std::numeric_limits<T>::infinity());
  std::fill(state.sum, state.sum + H, T(0));
  std::fill(state.acc, state.acc + H * dh, T(0));

  for (int64_t t0 = begin; t0 < end; t0 += kTile) {
    const int64_t n = std::min(kTile, end - t0);
    // 1. the tile's logits, from the factors
    for (int64_t i = 0; i < n; ++i) {
      const int64_t m = t0 + i;
      const T* ak = a_k + (b * M + m) * H * R;   // [H,R]
      const T* bk = b_k + (b * M + m) * R * dh;  // [R,dh]
      if (factorized) {
        for (int64_t r = 0; r < RQ; ++r)
          for (int64_t s = 0; s < R; ++s) s1[r * R + s] = dot(bq + r * dh, bk + s * dh, dh);
        for (int64_t h = 0; h < H; ++h) {
          T z = 0;
          for (int64_t s = 0; s < R; ++s) {
            T mixed = 0;  // Σ_r A_q[h,r] s1[r,s]
            for (int64_t r = 0; r < RQ; ++r) mixed += aq[h * RQ + r] * s1[r * R + s];
            z += ak[h * R + s] * mixed;
          }
          logits[h * kTile + i] = z * static_cast<T>(p.logit_scale);
        }
      } else {
        for (int64_t h = 0; h < H; ++h) {
          T z = 0;
          for (int64_t s = 0; s < R; ++s) z += ak[h * R + s] * dot(bq + h * dh, bk + s * dh, dh);
          logits[h * kTile + i] = z * static_cast<T>(p.logit_scale);
        }
      }
    }
    // 2. per head: rescale the state to the new running max, then add the tile's weighted values
    for (int64_t h = 0; h < H; ++h) {
      const T* lh = &logits[h * kTile];
      const T new_max = std::max(state.max[h], *std::max_element(lh, lh + n));
      const T correction = std::exp(state.max[h] - new_max);  // exp(−inf) = 0 on the first tile
      T* acc = state.acc + h * dh;
      state.sum[h] *= correction;
#pragma omp simd
      for (int64_t j = 0; j < dh; ++j) acc[j] *= correction;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t m = t0 + i;
        const T weight = std::exp(lh[i] - new_max);
        state.sum[h] += weight;
        const T* av = a_v + ((b * M + m) * H + h) * R;  // A_v[m,h,:]
        const T* bv = b_v + (b * M + m) * R * dh;       // [R,dh]
        for (int64_t u = 0; u < R; ++u) {
          const T w = weight * av[u];
          const T* row = bv + u * dh;
#pragma omp simd
          for (int64_t j = 0; j < dh; ++j) acc[j] += w * row[j];
        }
      }
      state.max[h] = new_max;
    }
  }
}

template <class T>
void tpa_decode_attention(const Backend::TPADecode& p, const T* a_q, const T* b_q, const T* a_k, const T* b_k,
                          const T* a_v, const T* b_v, const int32_t* lengths, T* out) {
  const int64_t B = p.batch, H = p.heads, dh = p.head_dim;
  int64_t longest = 0;
  for (int64_t b = 0; b < B; ++b) longest = std::max<int64_t>(longest, lengths[b]);
  const int64_t chunks = std::max<int64_t>(1, (longest + kChunk - 1) / kChunk);
  const int64_t tasks = B * chunks, state_size = H * (dh + 2);
  std::vector<T> partials(static_cast<size_t>(tasks * state_size));
  auto partial = [&](int64_t task) {
    T* base = partials.data() + task * state_size;
    return Partial<T>{base, base + H, base + 2 * H};
  };

#pragma omp parallel for schedule(dynamic, 1) if (tasks > 1)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t b = task / chunks, begin = (task % chunks) * kChunk;
    const int64_t end = std::min<int64_t>(begin + kChunk, lengths[b]);
    if (begin < end) attend_chunk(p, b, begin, end, a_q, b_q, a_k, b_k, a_v, b_v, partial(task));
  }

  // merge the chunks of each row: rescale every chunk's state to the row's overall max
  for (int64_t b = 0; b < B; ++b) {
    const int64_t used = (lengths[b] + kChunk - 1) / kChunk;  // chunks that saw tokens
    for (int64_t h = 0; h < H; ++h) {
      T* o = out + (b * H + h) * dh;
      std::fill(o, o + dh, T(0));
      T overall = -std::numeric_limits<T>::infinity(), total = 0;
      for (int64_t c = 0; c < used; ++c) overall = std::max(overall, partial(b * chunks + c).max[h]);
      for (int64_t c = 0; c < used; ++c) {
        const Partial<T> s = partial(b * chunks + c);
        const T factor = std::exp(s.max[h] - overall);
        total += factor * s.sum[h];
        for (int64_t j = 0; j < dh; ++j) o[j] += factor * s.acc[h * dh + j];
      }
      const T normalizer = total > 0 ? static_cast<T>(p.value_scale) / total : T(0);
      for (int64_t j = 0; j < dh; ++j) o[j] *= normalizer;
    }
  }
}

}  // namespace

void CpuBackend::tpa_decode_attention(const TPADecode& p, const Tensor& a_q, const Tensor& b_q, const Tensor& a_k,
                                      const Tensor& b_k, const Tensor& a_v, const Tensor& b_v, const Tensor& lengths,
                                      Tensor& out) {
  const auto timing = timer_.time("tpa_decode_attention");
  const int64_t B = p.batch, H = p.heads, RQ = p.q_rank, R = p.rank, dh = p.head_dim, M = p.capacity;
  const DType dtype = out.dtype();
  // bfloat16 factors with a float32 out: widened to float32 as they are read, then the float32 kernel.
  const DType factors = dtype == DType::F32 && b_q.dtype() == DType::BF16 ? DType::BF16 : dtype;
  if (RQ > 0) expect("tpa_decode_attention", {{"a_q", a_q}}, factors, B * H * RQ);
  expect("tpa_decode_attention", {{"b_q", b_q}}, factors, B * (RQ > 0 ? RQ : H) * dh);
  expect("tpa_decode_attention", {{"a_k", a_k}, {"a_v", a_v}}, factors, B * M * H * R);
  expect("tpa_decode_attention", {{"b_k", b_k}, {"b_v", b_v}}, factors, B * M * R * dh);
  expect("tpa_decode_attention", {{"out", out}}, dtype, B * H * dh);
  expect("tpa_decode_attention", {{"lengths", lengths}}, DType::I32, B);
  const int32_t* length = ptr<const int32_t>(lengths);
  for (int64_t b = 0; b < B; ++b)
    T6_CHECK(length[b] >= 1 && length[b] <= M, "cpu tpa_decode_attention: row ", b, " has length ", length[b],
             ", outside [1, ", M, "] (the cache capacity)");
  auto widened = [&](const Tensor& t) { return factors == DType::BF16 && t.defined() ? t.to_dtype(dtype) : t; };
  const Tensor aq = widened(a_q), bq = widened(b_q), ak = widened(a_k), bk = widened(b_k), av = widened(a_v),
               bv = widened(b_v);
  dispatch_float("tpa_decode_attention", dtype, [&](auto t) {
    using T = decltype(t);
    cpu::tpa_decode_attention(p, RQ > 0 ? ptr<const T>(aq) : nullptr, ptr<const T>(bq), ptr<const T>(ak),
                              ptr<const T>(bk), ptr<const T>(av), ptr<const T>(bv), length, ptr<T>(out));
  });
}

}  // namespace t6::cpu
