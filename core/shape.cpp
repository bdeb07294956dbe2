#include "core/shape.h"

#include "core/error.h"

namespace t6 {

int64_t numel_of(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) {
    T6_CHECK(s >= 0, "shape ", shape_str(shape), " has a negative size");
    T6_CHECK(!__builtin_mul_overflow(n, s, &n), "shape ", shape_str(shape),
             " has more elements than fit in 64 bits; use smaller sizes");
  }
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int normalize_axis(int axis, int ndim, const char* op) {
  int a = axis < 0 ? axis + ndim : axis;
  T6_CHECK(a >= 0 && a < ndim, op, ": axis ", axis, " is out of range for a tensor with ", ndim, " dimensions");
  return a;
}

}  // namespace t6
