// Sums and means over all elements or one axis.
#include "autograd/ops.h"
#include "autograd/ops/checks.h"
#include "core/backend.h"

namespace t6 {

namespace {

// x viewed as [outer, n, inner], summed over n.
Tensor sum_middle(const Tensor& x, int64_t outer, int64_t n, int64_t inner, const Shape& out_shape) {
  Tensor y = empty(out_shape, x.dtype(), x.device());
  backend_of(x).sum_axis(x.contiguous_data(), y, outer, n, inner);
  return y;
}

// The gradient of a sum: gy repeated along the reduced axes. A view with stride 0 along those axes
// reads each gy value n times without copying; clone_data() then packs it into a fresh tensor.
Tensor repeat_reduced(const Tensor& gy, const Shape& in_shape, const std::vector<bool>& reduced) {
  const Tensor g = gy.contiguous_data();
  Shape kept_shape = in_shape;
  for (size_t d = 0; d < in_shape.size(); ++d) kept_shape[d] = reduced[d] ? 1 : in_shape[d];
  Shape strides = contiguous_strides(kept_shape);
  for (size_t d = 0; d < in_shape.size(); ++d) strides[d] = reduced[d] ? 0 : strides[d];
  return g.as_strided(in_shape, strides, g.offset()).clone_data();
}

}  // namespace

Tensor sum(const Tensor& x) {
  check_float("sum", x);
  Tensor y = sum_middle(x, 1, x.numel(), 1, {});
  if (Node* node = make_node("sum", y, {x})) {
    node->backward = [in_shape = x.shape()](const Tensor& gy) -> Grads {
      return {repeat_reduced(gy, in_shape, std::vector<bool>(in_shape.size(), true))};  // ∂Σx/∂x_i = 1
    };
  }
  return y;
}

Tensor sum(const Tensor& x, int axis_in, bool keepdim) {
  check_float("sum", x);
  const int axis = normalize_axis(axis_in, x.ndim(), "sum");
  const Shape& s = x.shape();
  const int64_t outer = numel_of(Shape(s.begin(), s.begin() + axis));
  const int64_t inner = numel_of(Shape(s.begin() + axis + 1, s.end()));
  Shape out_shape = s;
  if (keepdim) {
    out_shape[axis] = 1;
  } else {
    out_shape.erase(out_shape.begin() + axis);
  }
  Tensor y = sum_middle(x, outer, s[axis], inner, out_shape);
  if (Node* node = make_node("sum", y, {x})) {
    node->backward = [in_shape = s, axis](const Tensor& gy) -> Grads {
      std::vector<bool> reduced(in_shape.size(), false);
      reduced[axis] = true;
      return {repeat_reduced(gy, in_shape, reduced)};
    };
  }
  return y;
}

Tensor mean(const Tensor& x) { return scale(sum(x), 1.0 / static_cast<double>(x.numel())); }

Tensor mean(const Tensor& x, int axis, bool keepdim) {
  const int64_t n = x.shape()[normalize_axis(axis, x.ndim(), "mean")];
  return scale(sum(x, axis, keepdim), 1.0 / static_cast<double>(n));
}

}  // namespace t6
