// Argument checks shared by the ops: each throws t6::Error naming the op and the offending shapes.
#pragma once
#include "core/tensor.h"

namespace t6 {

inline void check_float(const char* op, const Tensor& x) {
  T6_CHECK(x.defined(), op, ": input is an undefined tensor");
  T6_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::F64, op, ": expects a float32 or float64 tensor, got ",
           dtype_name(x.dtype()), " of shape ", shape_str(x.shape()));
}

inline void check_same_kind(const char* op, const Tensor& a, const Tensor& b) {
  check_float(op, a);
  check_float(op, b);
  T6_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ (", dtype_name(a.dtype()), " ", shape_str(a.shape()),
           " vs ", dtype_name(b.dtype()), " ", shape_str(b.shape()), "); cast one of them");
  T6_CHECK(a.device() == b.device(), op, ": tensors are on different devices (", device_name(a.device()), " vs ",
           device_name(b.device()), ")");
}

inline void check_ids(const char* op, const Tensor& ids) {
  T6_CHECK(ids.defined() && ids.dtype() == DType::I32, op, ": ids/targets must be an int32 tensor, got ",
           ids.defined() ? dtype_name(ids.dtype()) : "undefined", ids.defined() ? " " + shape_str(ids.shape()) : "");
}

}  // namespace t6
