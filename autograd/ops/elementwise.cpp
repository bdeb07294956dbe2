// Elementwise ops: arithmetic with trailing broadcasting, and the pointwise functions of the model.
#include <cmath>

#include "autograd/ops.h"
#include "autograd/ops/checks.h"
#include "core/backend.h"

namespace t6 {

namespace {

// Output shape of a broadcasting binary op: the longer shape, when the shorter is its suffix.
Shape broadcast_shape(const char* op, const Tensor& a, const Tensor& b) {
  const Shape& longer = a.ndim() >= b.ndim() ? a.shape() : b.shape();
  const Shape& shorter = a.ndim() >= b.ndim() ? b.shape() : a.shape();
  if (numel_of(shorter) == 1) return longer;
  const bool suffix = std::equal(shorter.begin(), shorter.end(), longer.end() - shorter.size());
  T6_CHECK(suffix, op, ": shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
           " do not broadcast (the smaller shape must equal the trailing dimensions of the larger)");
  return longer;
}

// The gradient of a broadcast operand: sum the output gradient over the leading axes it was
// repeated along, back to the operand's own shape.
Tensor unbroadcast(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const int64_t n = numel_of(shape);
  Tensor summed = empty({n}, grad.dtype(), grad.device());
  backend_of(grad).sum_axis(grad.contiguous_data(), summed, 1, grad.numel() / n, n);
  return summed.view(shape);
}

Tensor binary(const char* op, BinaryOp kind, const Tensor& a, const Tensor& b) {
  check_same_kind(op, a, b);
  Tensor out = empty(broadcast_shape(op, a, b), a.dtype(), a.device());
  backend_of(a).binary(kind, a.contiguous_data(), b.contiguous_data(), out);
  return out;
}

Tensor unary(const char* op, UnaryOp kind, const Tensor& x, double alpha = 0.0) {
  check_float(op, x);
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  backend_of(x).unary(kind, x.contiguous_data(), y, alpha);
  return y;
}

// For pointwise functions the backend has a fused derivative kernel: gx = gy · f'(x). Each derivative
// reads either the input (log, silu) or the output (exp, sqrt, rsqrt, sigmoid) or neither, and only
// that one is kept alive for backward.
Tensor pointwise(const char* op, UnaryOp kind, const Tensor& x, double alpha = 0.0) {
  Tensor y = unary(op, kind, x, alpha);
  if (Node* node = make_node(op, y, {x})) {
    const bool reads_input = kind == UnaryOp::Log || kind == UnaryOp::Silu;
    const bool reads_output = kind == UnaryOp::Exp || kind == UnaryOp::Sqrt || kind == UnaryOp::Rsqrt ||
                              kind == UnaryOp::Sigmoid;
    Tensor saved_x = reads_input ? node->save(x.contiguous_data()) : Tensor();
    Tensor saved_y = reads_output ? node->save(y) : Tensor();
    node->backward = [kind, alpha, saved_x, saved_y](const Tensor& gy_any) -> Grads {
      Tensor gy = gy_any.contiguous_data();
      Tensor gx = empty_like(gy);
      // The operand the derivative does not read is passed as gy, only to fill the slot.
      backend_of(gy).unary_backward(kind, saved_x.defined() ? saved_x : gy, saved_y.defined() ? saved_y : gy, gy,
                                    gx, alpha);
      return {gx};
    };
  }
  return y;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary("add", BinaryOp::Add, a, b);
  if (Node* node = make_node("add", out, {a, b})) {
    node->backward = [sa = a.shape(), sb = b.shape()](const Tensor& gy) -> Grads {
      return {unbroadcast(gy, sa), unbroadcast(gy, sb)};  // d(a+b)/da = d(a+b)/db = 1
    };
  }
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary("sub", BinaryOp::Sub, a, b);
  if (Node* node = make_node("sub", out, {a, b})) {
    node->backward = [sa = a.shape(), sb = b.shape()](const Tensor& gy) -> Grads {
      return {unbroadcast(gy, sa), unbroadcast(neg(gy), sb)};  // d(a−b)/db = −1
    };
  }
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary("mul", BinaryOp::Mul, a, b);
  if (Node* node = make_node("mul", out, {a, b})) {
    node->backward = [a = node->save(a), b = node->save(b), need_a = a.requires_grad(),
                      need_b = b.requires_grad()](const Tensor& gy) -> Grads {
      return {need_a ? unbroadcast(mul(gy, b), a.shape()) : Tensor(),   // d(a·b)/da = b
              need_b ? unbroadcast(mul(gy, a), b.shape()) : Tensor()};  // d(a·b)/db = a
    };
  }
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary("div", BinaryOp::Div, a, b);
  if (Node* node = make_node("div", out, {a, b})) {
    node->backward = [b = node->save(b), out = node->save(out), need_a = a.requires_grad(), sa = a.shape(),
                      need_b = b.requires_grad()](const Tensor& gy) -> Grads {
      return {need_a ? unbroadcast(div(gy, b), sa) : Tensor(),                     // d(a/b)/da = 1/b
              need_b ? unbroadcast(neg(div(mul(gy, out), b)), b.shape()) : Tensor()};  // d(a/b)/db = −(a/b)/b
    };
  }
  return out;
}

Tensor neg(const Tensor& x) { return pointwise("neg", UnaryOp::Neg, x); }
Tensor scale(const Tensor& x, double alpha) { return pointwise("scale", UnaryOp::Scale, x, alpha); }
Tensor add_scalar(const Tensor& x, double alpha) { return pointwise("add_scalar", UnaryOp::AddScalar, x, alpha); }
Tensor exp(const Tensor& x) { return pointwise("exp", UnaryOp::Exp, x); }
Tensor log(const Tensor& x) { return pointwise("log", UnaryOp::Log, x); }
Tensor sqrt(const Tensor& x) { return pointwise("sqrt", UnaryOp::Sqrt, x); }
Tensor rsqrt(const Tensor& x) { return pointwise("rsqrt", UnaryOp::Rsqrt, x); }
Tensor sigmoid(const Tensor& x) { return pointwise("sigmoid", UnaryOp::Sigmoid, x); }
Tensor silu(const Tensor& x) { return pointwise("silu", UnaryOp::Silu, x); }

}  // namespace t6
