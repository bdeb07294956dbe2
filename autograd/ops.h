// Every differentiable operation of t6. Each one computes its output through the device backend and,
// when an input requires grad, attaches its backward right next to the forward (see autograd/ops/).
// Shapes in comments use: B batch, T time, d features.
#pragma once
#include <optional>
#include <vector>

#include "autograd/node.h"
#include "core/tensor.h"

namespace t6 {

// --- elementwise (autograd/ops/elementwise.cpp) ----------------------------------------------------
// Binary ops broadcast a trailing operand: shapes must be equal, or one shape must be a suffix of the
// other (a row vector [d] against [B,T,d]; a one-element tensor against anything).
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& x);
Tensor scale(const Tensor& x, double alpha);       // alpha · x
Tensor add_scalar(const Tensor& x, double alpha);  // x + alpha
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor silu(const Tensor& x);  // x · sigmoid(x)

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& x) { return neg(x); }
inline Tensor operator*(const Tensor& x, double alpha) { return scale(x, alpha); }
inline Tensor operator*(double alpha, const Tensor& x) { return scale(x, alpha); }

// --- matrix multiply (autograd/ops/matmul.cpp) -----------------------------------------------------
// op(a) · op(b) over the last two axes, where op transposes when its flag is set. Leading (batch) axes
// must match, or b may be a plain matrix shared by every batch entry (a linear layer: x · Wᵀ is
// matmul(x, W, false, true)). Transposed views are fed to BLAS with a transpose flag, not copied.
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false, bool transpose_b = false);

// --- shape and layout (autograd/ops/shape.cpp) -----------------------------------------------------
Tensor reshape(const Tensor& x, const Shape& shape);  // a view when x is contiguous, else a copy
Tensor transpose(const Tensor& x, int axis0, int axis1);  // a strided view
Tensor permute(const Tensor& x, const std::vector<int>& order);  // a strided view
Tensor contiguous(const Tensor& x);  // x itself when contiguous, else a packed copy
Tensor slice(const Tensor& x, int axis, int64_t start, int64_t end);  // [start, end) along axis; a view
std::vector<Tensor> split(const Tensor& x, int axis, const std::vector<int64_t>& sizes);
Tensor concat(const std::vector<Tensor>& xs, int axis);
Tensor cast(const Tensor& x, DType dtype);  // dtype conversion; the gradient is cast back
Tensor to(const Tensor& x, Device device);  // device move; the gradient moves back

// --- reductions (autograd/ops/reduce.cpp) ----------------------------------------------------------
Tensor sum(const Tensor& x);  // all elements → a 0-d tensor
Tensor sum(const Tensor& x, int axis, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, int axis, bool keepdim = false);

// --- neural-network ops (one file each in autograd/ops/) ------------------------------------------
// softmax(scale · x) over the last axis. With causal, x is [..., Tq, Tk] and query i may attend to
// key j only when j ≤ i + (Tk − Tq) (queries are the last Tq positions).
Tensor softmax(const Tensor& x, double scale = 1.0, bool causal = false);
Tensor log_softmax(const Tensor& x);
// Mean cross-entropy of logits [..., V] against int32 targets [...], skipping targets equal to
// ignore_index (−1). Returns a 0-d tensor; 0 when every target is ignored.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int ignore_index = -1);
// cross_entropy(matmul(x, weight, false, true), targets) for x [..., d], weight [V, d], fused over
// chunks of chunk_rows rows (0: linear_cross_entropy_chunk_rows(V)) so that the [..., V] logits never
// exist whole (autograd/ops/linear_cross_entropy.cpp): the language-model head with its loss.
Tensor linear_cross_entropy(const Tensor& x, const Tensor& weight, const Tensor& targets, int64_t chunk_rows = 0);
int64_t linear_cross_entropy_chunk_rows(int64_t vocab);
// weight [V, d], int32 ids [...] → [..., d]. Backward scatter-adds (repeated ids accumulate).
Tensor embedding(const Tensor& weight, const Tensor& ids);
// x / sqrt(mean(x², last axis) + eps), no weight (spec). The output is x's dtype, or out_dtype:
// bfloat16 for a float32 x, when only products read it (product_input_dtype, autograd/mixed_precision.h);
// the gradient stays x's dtype.
Tensor rms_norm(const Tensor& x, double eps, std::optional<DType> out_dtype = std::nullopt);
// The spec's half-split rotary embedding of every row of the last axis (even length dh).
// positions: int32 whose shape is a prefix of x.shape[:-1] (e.g. [B,T] for x [B,T,R,dh]); all rows
// under one position rotate by that position's angles θ_j = t · 10000^(−2j/dh).
Tensor rope(const Tensor& x, const Tensor& positions);
// silu(gate) ⊙ up in one pass each way (autograd/ops/swiglu.cpp), the gate of the spec's SwiGLU MLP.
// out_dtype as for rms_norm.
Tensor swiglu(const Tensor& gate, const Tensor& up, std::optional<DType> out_dtype = std::nullopt);
// TPA's factor product (autograd/ops/tpa_product.cpp): a (…,H,R), b (…,R,dh) with the same leading
// axes → (…,H,dh), (1/R) a·b for every leading index (spec: q = (1/RQ) A_q B_q, k and v likewise).
Tensor tpa_product(const Tensor& a, const Tensor& b);
// Fused causal attention (autograd/ops/flash_attention.cpp): q (B,Tq,H,dh), k and v (B,Tk,Hkv,dh) with
// Hkv dividing H → (B,Tq,H·dh), the same function as nn/causal_attention.cpp's composite path but
// without storing the attention matrix. Under Bf16MatmulGuard the GPU multiplies in bfloat16.
Tensor flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale);
// TPA's fused causal attention (autograd/ops/tpa_flash_attention.cpp): flash_attention(q, k, v, scale)
// with q = tpa_product(a_q, b_q), k = tpa_product(a_k, b_k), v = tpa_product(a_v, b_v), the heads formed
// inside the op from the factors a_q (B,T,H,RQ), b_q (B,T,RQ,dh), a_k and a_v (B,T,H,R), b_k and b_v
// (B,T,R,dh) and never kept for backward; an undefined a_q takes b_q (B,T,H,dh) as the query heads.
// → (B,T,H·dh), float32 (float64 for float64 factors) or out_dtype as for rms_norm. Factors float32,
// float64 or (mixed precision) bfloat16.
Tensor tpa_flash_attention(const Tensor& a_q, const Tensor& b_q, const Tensor& a_k, const Tensor& b_k,
                           const Tensor& a_v, const Tensor& b_v, double scale,
                           std::optional<DType> out_dtype = std::nullopt);

}  // namespace t6
