#include "nn/cached_heads_decode.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "nn/kv_cache.h"

namespace t6 {

Tensor cached_heads_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                           const std::vector<int64_t>& lengths) {
  const int64_t B = q.size(0), H = q.size(1), dh = q.size(2), Hkv = k_cache.size(1), M = k_cache.size(2);
  T6_CHECK(k_cache.ndim() == 4 && H % Hkv == 0 && k_cache.size(0) == B && k_cache.size(3) == dh &&
               v_cache.shape() == k_cache.shape(),
           "cached_heads_decode: q ", shape_str(q.shape()), " does not fit the cached heads ",
           shape_str(k_cache.shape()), " and ", shape_str(v_cache.shape()));
  check_decode_lengths(lengths, B, M, "cached_heads_decode");
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

}  // namespace t6
