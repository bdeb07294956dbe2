#include "nn/flash_tpa_decode.h"

#include <cmath>

#include "core/backend.h"

namespace t6 {

namespace {

void check_has_factors(const LayerKVCache& cache) {
  T6_CHECK(cache.a_k.defined(), "flash_tpa_decode: the cache holds no factors (it belongs to an mha/gqa/mqa model)");
}

}  // namespace

Tensor flash_tpa_decode(const TPAQuery& query, const LayerKVCache& cache, const std::vector<int64_t>& lengths) {
  check_has_factors(cache);
  check_decode_lengths(lengths, cache.a_k.size(0), cache.a_k.size(1), "flash_tpa_decode");
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

  // A bfloat16 cache (and query) gives a float32 result (core/backend.h: accumulation in float32).
  const DType out_dtype = cache.a_k.dtype() == DType::BF16 ? DType::F32 : cache.a_k.dtype();
  Tensor out = empty({B, H, dh}, out_dtype, cache.a_k.device());
  const Tensor a_q = factorized ? query.a_q.contiguous_data() : Tensor();
  backend_of(out).tpa_decode_attention(p, a_q, query.b_q.contiguous_data(), cache.a_k, cache.b_k, cache.a_v,
                                       cache.b_v, lengths.contiguous_data(), out);
  return out;
}

}  // namespace t6
