#include "nn/flash_tpa_decode.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "core/backend.h"
#include "nn/tpa_attention.h"

namespace t6 {

namespace {

void check_lengths(const std::vector<int64_t>& lengths, int64_t B, int64_t M, const char* op) {
  T6_CHECK(static_cast<int64_t>(lengths.size()) == B, op, ": ", lengths.size(), " lengths for ", B, " rows");
  for (int64_t n : lengths) T6_CHECK(n >= 1 && n <= M, op, ": a row attends to ", n, " tokens; needs 1 to ", M);
}

void check_has_factors(const LayerKVCache& cache) {
  T6_CHECK(cache.a_k.defined(), "flash_tpa_decode: the cache holds no factors (it belongs to an mha/gqa/mqa model)");
}

}  // namespace

Tensor flash_tpa_decode(const TPAQuery& query, const LayerKVCache& cache, const std::vector<int64_t>& lengths) {
  check_has_factors(cache);
  check_lengths(lengths, cache.a_k.size(0), cache.a_k.size(1), "flash_tpa_decode");
  const std::vector<int32_t> lengths32(lengths.begin(), lengths.end());
  return flash_tpa_decode(query, cache, from_ints(lengths32, {cache.a_k.size(0)}, cache.a_k.device()));
}

Tensor flash_tpa_decode(const TPAQuery& query, const LayerKVCache& cache, const Tensor& lengths) {
  check_has_factors(cache);
  for (const Tensor& t : cache.buffers())
    T6_CHECK(t.dtype() == query.b_q.dtype() && t.device() == query.b_q.device(), "flash_tpa_decode: the query is ",
             dtype_name(query.b_q.dtype()), " on ", device_name(query.b_q.device()), " but the cache ",
             dtype_name(t.dtype()), " on ", device_name(t.device()));
  const int64_t B = cache.a_k.size(0), M = cache.a_k.size(1), H = cache.a_k.size(2), R = cache.a_k.size(3),
                dh = cache.b_k.size(3);
  const bool factorized = query.a_q.defined();
  const int64_t RQ = factorized ? query.a_q.size(2) : 0;
  T6_CHECK(factorized ? query.a_q.shape() == Shape({B, H, RQ}) && query.b_q.shape() == Shape({B, RQ, dh})
                      : query.b_q.shape() == Shape({B, H, dh}),
           "flash_tpa_decode: query factors ", query.a_q.defined() ? shape_str(query.a_q.shape()) : "(none)", " and ",
           shape_str(query.b_q.shape()), " do not fit a cache of factors ", shape_str(cache.a_k.shape()), " and ",
           shape_str(cache.b_k.shape()));
  T6_CHECK(lengths.dtype() == DType::I32 && lengths.shape() == Shape({B}) && lengths.device() == cache.a_k.device(),
           "flash_tpa_decode: lengths must be int32 (", B, ") on ", device_name(cache.a_k.device()), ", got ",
           dtype_name(lengths.dtype()), " ", shape_str(lengths.shape()), " on ", device_name(lengths.device()));

  Backend::TPADecode p;
  p.batch = B, p.heads = H, p.q_rank = RQ, p.rank = R, p.head_dim = dh, p.capacity = M;
  // q = (1/RQ)·A_q B_q and k = (1/R)·A_k B_k, so the factor products carry 1/(RQ·R) besides 1/sqrt(dh)
  p.logit_scale = 1.0 / (static_cast<double>(factorized ? RQ * R : R) * std::sqrt(static_cast<double>(dh)));
  p.value_scale = 1.0 / static_cast<double>(R);  // v = (1/R)·A_v B_v

  Tensor out = empty({B, H, dh}, cache.a_k.dtype(), cache.a_k.device());
  const Tensor a_q = factorized ? query.a_q.contiguous_data() : Tensor();
  backend_of(out).tpa_decode_attention(p, a_q, query.b_q.contiguous_data(), cache.a_k, cache.b_k, cache.a_v,
                                       cache.b_v, lengths.contiguous_data(), out);
  return out;
}

Tensor cached_heads_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                           const std::vector<int64_t>& lengths) {
  const int64_t B = q.size(0), H = q.size(1), dh = q.size(2), Hkv = k_cache.size(1), M = k_cache.size(2);
  T6_CHECK(k_cache.ndim() == 4 && H % Hkv == 0 && k_cache.size(0) == B && k_cache.size(3) == dh &&
               v_cache.shape() == k_cache.shape(),
           "cached_heads_decode: q ", shape_str(q.shape()), " does not fit the cached heads ",
           shape_str(k_cache.shape()), " and ", shape_str(v_cache.shape()));
  check_lengths(lengths, B, M, "cached_heads_decode");
  std::vector<Tensor> rows;
  for (int64_t b = 0; b < B; ++b) {
    const Tensor qb = reshape(slice(q, 0, b, b + 1), {1, Hkv, H / Hkv, dh});  // head h = kv·G + g
    Tensor scores = matmul(qb, slice(k_cache, 0, b, b + 1), false, true);      // (1,Hkv,G,M)
    if (lengths[b] < M) {  // −inf on the slots this row has not filled: they get no weight
      std::vector<double> mask(static_cast<size_t>(M), 0.0);
      std::fill(mask.begin() + lengths[b], mask.end(), -INFINITY);
      scores = add(scores, from_vector(mask, {M}, scores.dtype(), scores.device()));
    }
    const Tensor att = softmax(scores, 1.0 / std::sqrt(static_cast<double>(dh)));
    rows.push_back(reshape(matmul(att, slice(v_cache, 0, b, b + 1)), {1, H, dh}));  // (1,Hkv,G,dh)
  }
  return concat(rows, 0);  // (B,H,dh)
}

Tensor materialized_tpa_decode(const TPAQuery& query, const LayerKVCache& cache, const std::vector<int64_t>& lengths) {
  const int64_t B = query.b_q.size(0);
  const Tensor q = query.a_q.defined()
                       ? tpa_product(reshape(query.a_q, {B, 1, query.a_q.size(1), query.a_q.size(2)}),
                                     reshape(query.b_q, {B, 1, query.b_q.size(1), query.b_q.size(2)}))
                       : query.b_q;                 // (B,1,H,dh) or (B,H,dh)
  // k_t = (1/R)·A_k B_k and v_t for every slot, as the spec writes them, then head-major: (B,H,M,dh)
  const Tensor k = contiguous(permute(tpa_product(cache.a_k, cache.b_k), {0, 2, 1, 3}));
  const Tensor v = contiguous(permute(tpa_product(cache.a_v, cache.b_v), {0, 2, 1, 3}));
  return cached_heads_decode(reshape(q, {B, k.size(1), k.size(3)}), k, v, lengths);
}

}  // namespace t6
