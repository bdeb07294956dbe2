// RMS normalisation over the last axis without a weight (the spec's rmsnorm), fused.
#include "autograd/ops.h"
#include "autograd/ops/checks.h"
#include "core/backend.h"

namespace t6 {

Tensor rms_norm(const Tensor& x, double eps) {
  check_float("rms_norm", x);
  T6_CHECK(x.ndim() >= 1 && x.size(-1) > 0, "rms_norm: needs a non-empty last axis, got ", shape_str(x.shape()));
  const int64_t d = x.size(-1), rows = x.numel() / d;
  const Tensor flat = x.contiguous_data().view({rows, d});
  Tensor y = empty({rows, d}, x.dtype(), x.device());
  Tensor rstd = empty({rows}, x.dtype(), x.device());
  backend_of(x).rms_norm_forward(flat, y, rstd, eps);
  y = y.view(x.shape());
  if (Node* node = make_node("rms_norm", y, {x})) {
    node->backward = [x = node->save(flat), rstd = node->save(rstd), shape = x.shape()](const Tensor& gy) -> Grads {
      // y = x·r with r = (mean(x²)+eps)^(-1/2): dx = r·(gy − x·r²·mean(gy ⊙ x))
      Tensor gx = empty_like(x);
      backend_of(x).rms_norm_backward(x, rstd, gy.contiguous_data().view(x.shape()), gx);
      return {gx.view(shape)};
    };
  }
  return y;
}

}  // namespace t6
