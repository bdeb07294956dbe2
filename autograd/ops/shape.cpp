// Shape and layout ops. Views share storage with their input (no copy); their backward maps the
// gradient back through the inverse view.
#include <numeric>

#include "autograd/ops.h"
#include "autograd/ops/checks.h"
#include "core/backend.h"

namespace t6 {

Tensor reshape(const Tensor& x, const Shape& shape) {
  Tensor y = x.contiguous_data().view(shape);
  if (Node* node = make_node("reshape", y, {x})) {
    node->backward = [in_shape = x.shape()](const Tensor& gy) -> Grads { return {reshape(gy, in_shape)}; };
  }
  return y;
}

Tensor permute(const Tensor& x, const std::vector<int>& order) {
  T6_CHECK(static_cast<int>(order.size()) == x.ndim(), "permute: order of length ", order.size(),
           " for a tensor of shape ", shape_str(x.shape()));
  Shape shape(order.size()), strides(order.size());
  std::vector<int> inverse(order.size(), -1);
  for (size_t i = 0; i < order.size(); ++i) {
    const int axis = normalize_axis(order[i], x.ndim(), "permute");
    T6_CHECK(inverse[axis] < 0, "permute: axis ", axis, " appears twice in the order");
    inverse[axis] = static_cast<int>(i);
    shape[i] = x.shape()[axis];
    strides[i] = x.strides()[axis];
  }
  Tensor y = x.as_strided(shape, strides, x.offset());
  if (Node* node = make_node("permute", y, {x})) {
    node->backward = [inverse](const Tensor& gy) -> Grads { return {permute(gy, inverse)}; };
  }
  return y;
}

Tensor transpose(const Tensor& x, int axis0, int axis1) {
  std::vector<int> order(x.ndim());
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[normalize_axis(axis0, x.ndim(), "transpose")], order[normalize_axis(axis1, x.ndim(), "transpose")]);
  return permute(x, order);
}

Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor y = x.clone_data();
  if (Node* node = make_node("contiguous", y, {x})) {
    node->backward = [](const Tensor& gy) -> Grads { return {gy}; };  // a copy: gradient passes through
  }
  return y;
}

Tensor slice(const Tensor& x, int axis_in, int64_t start, int64_t end) {
  const int axis = normalize_axis(axis_in, x.ndim(), "slice");
  const int64_t n = x.shape()[axis];
  T6_CHECK(0 <= start && start <= end && end <= n, "slice: range [", start, ", ", end, ") is outside axis ", axis,
           " of length ", n, " (shape ", shape_str(x.shape()), ")");
  Shape shape = x.shape();
  shape[axis] = end - start;
  Tensor y = x.as_strided(shape, x.strides(), x.offset() + start * x.strides()[axis]);
  if (Node* node = make_node("slice", y, {x})) {
    node->backward = [in_shape = x.shape(), axis, start](const Tensor& gy) -> Grads {
      // slice picks [start, end): its gradient is gy placed there, zeros elsewhere
      Tensor gx = zeros(in_shape, gy.dtype(), gy.device());
      Tensor window = slice(gx, axis, start, start + gy.shape()[axis]);
      backend_of(gy).strided_copy(gy, window);
      return {gx};
    };
  }
  return y;
}

std::vector<Tensor> split(const Tensor& x, int axis_in, const std::vector<int64_t>& sizes) {
  const int axis = normalize_axis(axis_in, x.ndim(), "split");
  const int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  T6_CHECK(total == x.shape()[axis], "split: sizes add up to ", total, " but axis ", axis, " of ",
           shape_str(x.shape()), " has length ", x.shape()[axis]);
  std::vector<Tensor> parts;
  int64_t start = 0;
  for (int64_t size : sizes) {
    parts.push_back(slice(x, axis, start, start + size));
    start += size;
  }
  return parts;
}

Tensor concat(const std::vector<Tensor>& xs, int axis_in) {
  T6_CHECK(!xs.empty(), "concat: needs at least one tensor");
  const int axis = normalize_axis(axis_in, xs[0].ndim(), "concat");
  Shape shape = xs[0].shape();
  shape[axis] = 0;
  for (const Tensor& x : xs) {
    T6_CHECK(x.dtype() == xs[0].dtype() && x.device() == xs[0].device() && x.ndim() == xs[0].ndim(),
             "concat: every tensor needs the same dtype, device and rank; got ", shape_str(x.shape()), " ",
             dtype_name(x.dtype()), " after ", shape_str(xs[0].shape()), " ", dtype_name(xs[0].dtype()));
    for (int d = 0; d < x.ndim(); ++d) {
      T6_CHECK(d == axis || x.shape()[d] == xs[0].shape()[d], "concat: shapes ", shape_str(xs[0].shape()), " and ",
               shape_str(x.shape()), " differ outside axis ", axis);
    }
    shape[axis] += x.shape()[axis];
  }
  Tensor y = empty(shape, xs[0].dtype(), xs[0].device());
  std::vector<int64_t> sizes;
  {
    NoGradGuard no_grad;  // the copies into y are part of this op, not separate graph nodes
    int64_t start = 0;
    for (const Tensor& x : xs) {
      Tensor window = slice(y, axis, start, start + x.shape()[axis]);
      backend_of(x).strided_copy(x, window);
      sizes.push_back(x.shape()[axis]);
      start += x.shape()[axis];
    }
  }
  if (Node* node = make_node("concat", y, xs)) {
    node->backward = [axis, sizes](const Tensor& gy) -> Grads { return split(gy, axis, sizes); };
  }
  return y;
}

Tensor cast(const Tensor& x, DType dtype) {
  Tensor y = x.to_dtype(dtype);
  if (Node* node = make_node("cast", y, {x})) {
    node->backward = [from = x.dtype()](const Tensor& gy) -> Grads { return {gy.to_dtype(from)}; };
  }
  return y;
}

Tensor to(const Tensor& x, Device device) {
  Tensor y = x.to_device(device);
  if (Node* node = make_node("to", y, {x})) {
    node->backward = [from = x.device()](const Tensor& gy) -> Grads { return {gy.to_device(from)}; };
  }
  return y;
}

}  // namespace t6
