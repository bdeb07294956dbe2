// TPA's factor product, fused (spec "Tensor Product Attention"): each token's heads are formed from
// its factors, q_t = (1/RQ) A_q(x_t) B_q(x_t), k_t = (1/R) A_k B_k, v_t = (1/R) A_v B_v, an (H×R)·(R×dh)
// product per token. As a batched matmul (one tiny gemm per token, then a separate 1/R scaling pass)
// this took most of the time of TPA's projections on a GPU; here one kernel per direction reads the
// factors once and writes the heads once. tests/test_ops_nn.cpp checks it against that composite.
#include <algorithm>

#include "autograd/ops.h"
#include "autograd/ops/checks.h"
#include "core/backend.h"

namespace t6 {

Tensor tpa_product(const Tensor& a, const Tensor& b) {
  check_same_kind("tpa_product", a, b);
  const bool same_leading = a.ndim() >= 2 && a.ndim() == b.ndim() &&
                            std::equal(a.shape().begin(), a.shape().end() - 2, b.shape().begin());
  T6_CHECK(same_leading && a.size(-1) == b.size(-2) && a.size(-1) > 0,
           "tpa_product: needs factors a (…,H,R) and b (…,R,dh) with the same leading axes and R ≥ 1; got a ",
           shape_str(a.shape()), " and b ", shape_str(b.shape()));
  Backend::TPAProduct p;
  p.heads = a.size(-2), p.rank = a.size(-1), p.head_dim = b.size(-1);
  p.tokens = p.heads * p.rank == 0 ? 0 : a.numel() / (p.heads * p.rank);
  p.scale = 1.0 / static_cast<double>(p.rank);
  Shape out_shape(a.shape().begin(), a.shape().end() - 1);
  out_shape.push_back(p.head_dim);  // (…,H,dh)
  const Tensor ac = a.contiguous_data(), bc = b.contiguous_data();
  Tensor out = empty(out_shape, a.dtype(), a.device());
  if (out.numel() > 0) backend_of(a).tpa_product_forward(p, ac, bc, out);
  if (Node* node = make_node("tpa_product", out, {a, b})) {
    node->backward = [p, a = node->save(ac), b = node->save(bc)](const Tensor& gout) -> Grads {
      // out[h,j] = (1/R) Σ_r a[h,r] b[r,j]: ga = (1/R) gout·bᵀ and gb = (1/R) aᵀ·gout, per token
      if (gout.numel() == 0) return {zeros_like(a), zeros_like(b)};  // dh = 0: nothing flows back
      Tensor ga = empty_like(a), gb = empty_like(b);
      backend_of(a).tpa_product_backward(p, a, b, gout.contiguous_data(), ga, gb);
      return {ga, gb};
    };
  }
  return out;
}

}  // namespace t6
