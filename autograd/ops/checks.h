// Argument checks shared by the ops: each throws t6::Error naming the op and the offending shapes.
#pragma once
#include <optional>

#include "autograd/mixed_precision.h"
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

// The output dtype of an op that may write bfloat16 for products to read (autograd/mixed_precision.h):
// x's own unless asked, and bfloat16 only from float32.
inline DType output_dtype(const char* op, const Tensor& x, std::optional<DType> requested) {
  const DType out = requested.value_or(x.dtype());
  T6_CHECK(out == x.dtype() || (out == DType::BF16 && x.dtype() == DType::F32), op, ": cannot write ",
           dtype_name(out), " from a ", dtype_name(x.dtype()), " input; the output is the input's dtype, or ",
           "bfloat16 from float32");
  return out;
}

// Checks the operands of a product of a (an activation) and b (usually a weight), and says whether it
// multiplies bfloat16 operands: under mixed precision for float32 inputs, or for a bfloat16 a (written so
// by its producer, autograd/mixed_precision.h) with a float32 b. A bfloat16 a anywhere else is refused.
inline bool product_in_bf16(const char* op, const Tensor& a, const Tensor& b) {
  if (!a.defined() || a.dtype() != DType::BF16) {
    check_same_kind(op, a, b);
    return product_input_dtype(a) == DType::BF16;
  }
  check_float(op, b);
  T6_CHECK(b.dtype() == DType::F32 && a.device() == b.device() && product_input_dtype(b) == DType::BF16, op,
           ": a bfloat16 input ", shape_str(a.shape()), " needs a float32 partner on its device under bf16 mixed ",
           "precision on a device with bfloat16 products; got ", dtype_name(b.dtype()), " on ",
           device_name(b.device()), " (cast the input to float32)");
  return true;
}

inline void check_ids(const char* op, const Tensor& ids) {
  T6_CHECK(ids.defined() && ids.dtype() == DType::I32, op, ": ids/targets must be an int32 tensor, got ",
           ids.defined() ? dtype_name(ids.dtype()) : "undefined", ids.defined() ? " " + shape_str(ids.shape()) : "");
}

}  // namespace t6
