// RMS normalisation over the last axis without a weight (the spec's rmsnorm), fused. Under mixed
// precision its output usually feeds only products, which would round it to bfloat16 first: written
// as bfloat16 here, it skips a float32 write, the cast's read and write, and a launch.
#include "autograd/ops.h"
#include "autograd/ops/checks.h"
#include "core/backend.h"

namespace t6 {

Tensor rms_norm(const Tensor& x, double eps, std::optional<DType> out_dtype) {
  check_float("rms_norm", x);
  T6_CHECK(x.ndim() >= 1 && x.size(-1) > 0, "rms_norm: needs a non-empty last axis, got ", shape_str(x.shape()));
  const int64_t d = x.size(-1), rows = x.numel() / d;
  const Tensor flat = x.contiguous_data().view({rows, d});
  Tensor y = empty({rows, d}, output_dtype("rms_norm", x, out_dtype), x.device());
  Tensor rstd = empty({rows}, x.dtype(), x.device());
  backend_of(x).rms_norm_forward(flat, y, rstd, eps);
  y = y.view(x.shape());
  if (Node* node = make_node("rms_norm", y, {x})) {
    node->backward = [x = node->save(flat), rstd = node->save(rstd), shape = x.shape()](const Tensor& gy) -> Grads {
      // y = x·r with r = (mean(x²)+eps)^(-1/2): dx = r·(gy − x·r²·mean(gy ⊙ x)); the rounding of a
      // bfloat16 y is not differentiated (gy is taken as the gradient of x·r), and gy comes in x's dtype
      // from a product (a bfloat16 gy only as a hand-made seed of a bfloat16 y)
      Tensor gx = empty_like(x);
      backend_of(x).rms_norm_backward(x, rstd, gy.to_dtype(x.dtype()).contiguous_data().view(x.shape()), gx);
      return {gx.view(shape)};
    };
  }
  return y;
}

}  // namespace t6
