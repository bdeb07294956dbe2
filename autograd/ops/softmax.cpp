// softmax and log_softmax over the last axis, fused into one kernel each way.
#include "autograd/ops.h"
#include "autograd/ops/checks.h"
#include "core/backend.h"

namespace t6 {

Tensor softmax(const Tensor& x, double scale, bool causal) {
  check_float("softmax", x);
  T6_CHECK(x.ndim() >= 1, "softmax: needs at least one dimension");
  T6_CHECK(!causal || x.ndim() >= 2, "softmax: a causal mask needs [..., Tq, Tk], got ", shape_str(x.shape()));
  const int64_t tq = causal ? x.size(-2) : 1;
  T6_CHECK(!causal || tq <= x.size(-1), "softmax: causal mask with more queries (", tq, ") than keys (",
           x.size(-1), ")");
  Tensor y = empty_like(x);
  backend_of(x).softmax_forward(x.contiguous_data(), y, scale, causal, tq);
  if (Node* node = make_node("softmax", y, {x})) {
    node->backward = [y = node->save(y), scale](const Tensor& gy) -> Grads {
      // y = softmax(s·x): dx = s · y ⊙ (gy − Σ_j gy_j y_j); masked entries have y = 0, so get 0.
      Tensor gx = empty_like(y);
      backend_of(y).softmax_backward(y, gy.contiguous_data(), gx, scale);
      return {gx};
    };
  }
  return y;
}

Tensor log_softmax(const Tensor& x) {
  check_float("log_softmax", x);
  Tensor y = empty_like(x);
  backend_of(x).log_softmax_forward(x.contiguous_data(), y);
  if (Node* node = make_node("log_softmax", y, {x})) {
    node->backward = [y = node->save(y)](const Tensor& gy) -> Grads {
      // y = x − logsumexp(x): dx = gy − softmax(x) · Σ_j gy_j, with softmax(x) = e^y
      Tensor gx = empty_like(y);
      backend_of(y).log_softmax_backward(y, gy.contiguous_data(), gx);
      return {gx};
    };
  }
  return y;
}

}  // namespace t6
