// Matrix multiply, 2-D and batched, with transpose flags; forward and backward are gemm calls. Under
// Bf16MatmulGuard, on a backend that multiplies_bf16(), both multiply bfloat16 copies of float32
// inputs into float32 results; a bfloat16 a (an activation its producer wrote for products,
// autograd/mixed_precision.h) is multiplied as it is.
#include "autograd/mixed_precision.h"
#include "autograd/ops.h"
#include "autograd/ops/checks.h"
#include "core/backend.h"

namespace t6 {

namespace {

// A gemm operand: a tensor whose last two axes are row-major packed, plus whether to transpose it.
// A view that is the transpose of packed data (x.transpose(-1,-2) of a contiguous x) is handed to BLAS
// as the packed data with the flag flipped, instead of being copied.
struct Operand {
  Tensor data;
  bool transposed;
};

Operand as_operand(const Tensor& x, bool transposed) {
  if (x.is_contiguous()) return {x, transposed};
  const Tensor swapped = transpose(x.detach(), -2, -1);
  if (swapped.is_contiguous()) return {swapped, !transposed};
  return {x.contiguous_data(), transposed};
}

// The product without recording: C = op(A) · op(B), batch axes already checked. bfloat16 operands
// give a float32 C (float32 accumulation).
Tensor gemm_product(const Tensor& a_in, const Tensor& b_in, bool ta, bool tb, const Shape& out_shape,
                    int64_t batch) {
  const Operand a = as_operand(a_in, ta), b = as_operand(b_in, tb);
  const int64_t m = out_shape[out_shape.size() - 2], n = out_shape.back();
  const int64_t k = ta ? a_in.size(-2) : a_in.size(-1);
  Tensor c = empty(out_shape, a_in.dtype() == DType::BF16 ? DType::F32 : a_in.dtype(), a_in.device());
  Backend::Gemm g;
  g.trans_a = a.transposed;
  g.trans_b = b.transposed;
  g.m = m, g.n = n, g.k = k;
  g.lda = a.data.size(-1);  // packed rows: the leading dimension is the stored row length
  g.ldb = b.data.size(-1);
  g.ldc = n;
  g.stride_a = m * k, g.stride_b = k * n, g.stride_c = m * n;
  g.batch = batch;
  if (c.numel() > 0) backend_of(a_in).gemm(g, a.data, b.data, c);
  return c;
}

// The backward products of the bf16 path: bfloat16 operands of agreeing shapes, a float32 result.
// Unchecked, unlike matmul(), which accepts only float32 and float64.
Tensor bf16_product(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  Shape out_shape(a.shape().begin(), a.shape().end() - 2);
  const int64_t batch = numel_of(out_shape);
  out_shape.push_back(ta ? a.size(-1) : a.size(-2));
  out_shape.push_back(tb ? b.size(-2) : b.size(-1));
  return gemm_product(a, b, ta, tb, out_shape, batch);
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const bool bf16 = product_in_bf16("matmul", a, b);
  T6_CHECK(a.ndim() >= 2 && b.ndim() >= 2, "matmul: both inputs need at least 2 dimensions, got ",
           shape_str(a.shape()), " and ", shape_str(b.shape()));
  // A plain matrix b shared by a batched a: fold a's batch axes into its rows (one big gemm).
  if (b.ndim() == 2 && a.ndim() > 2 && !ta) {
    Shape out_shape(a.shape().begin(), a.shape().end() - 1);
    out_shape.push_back(tb ? b.size(0) : b.size(1));
    return reshape(matmul(reshape(a, {-1, a.size(-1)}), b, false, tb), out_shape);
  }
  T6_CHECK(a.ndim() == b.ndim() && std::equal(a.shape().begin(), a.shape().end() - 2, b.shape().begin()),
           "matmul: batch dimensions of ", shape_str(a.shape()), " and ", shape_str(b.shape()),
           " differ (they must match, or b must be a 2-D matrix with transpose_a off)");
  const int64_t m = ta ? a.size(-1) : a.size(-2), ka = ta ? a.size(-2) : a.size(-1);
  const int64_t kb = tb ? b.size(-1) : b.size(-2), n = tb ? b.size(-2) : b.size(-1);
  T6_CHECK(ka == kb, "matmul: inner dimensions differ: ", shape_str(a.shape()), (ta ? "ᵀ" : ""), " · ",
           shape_str(b.shape()), (tb ? "ᵀ" : ""), " (", ka, " vs ", kb, ")");
  Shape out_shape(a.shape().begin(), a.shape().end() - 2);
  const int64_t batch = numel_of(out_shape);
  out_shape.push_back(m);
  out_shape.push_back(n);

  // Mixed precision multiplies bfloat16 copies of the inputs, and backward keeps those copies (half the
  // size) rather than the float32 inputs. A backend without bfloat16 products ignores the switch.
  const DType operand_dtype = bf16 ? DType::BF16 : a.dtype();
  // a is the activation of a linear layer, often shared by several layers: its copy is reused; b is
  // usually a weight, whose copy lasts until the optimizer changes it
  const Tensor a_op = bf16 ? bf16_copy(a) : a, b_op = bf16 ? bf16_weight(b) : b;
  Tensor c = gemm_product(a_op, b_op, ta, tb, out_shape, batch);
  if (Node* node = make_node("matmul", c, {a, b})) {
    // Gradients are products too, of the same operand dtype; with bfloat16 they come out float32, the
    // dtype of the inputs (the float32 master weights), also for a bfloat16 a.
    Tensor (*const product)(const Tensor&, const Tensor&, bool, bool) = bf16 ? bf16_product : matmul;
    node->backward = [a = node->save(a_op), b = node->save(b_op), ta, tb, operand_dtype, product,
                      need_a = a.requires_grad(), need_b = b.requires_grad()](const Tensor& grad_c) -> Grads {
      const Tensor gc = grad_c.to_dtype(operand_dtype);
      Tensor ga, gb;
      // forward: C = op(A)·op(B). Then d op(A) = dC·op(B)ᵀ and d op(B) = op(A)ᵀ·dC; when op is a
      // transpose, the input's own gradient is the transpose of that.
      if (need_a) ga = ta ? product(b, gc, tb, true)     // dA = (dC·op(B)ᵀ)ᵀ = op(B)·dCᵀ
                          : product(gc, b, false, !tb);  // dA = dC·op(B)ᵀ
      if (need_b) gb = tb ? product(gc, a, true, ta)     // dB = (op(A)ᵀ·dC)ᵀ = dCᵀ·op(A)
                          : product(a, gc, !ta, false);  // dB = op(A)ᵀ·dC
      return {ga, gb};
    };
  }
  return c;
}

}  // namespace t6
