// Causal scaled-dot-product attention over full heads: what every attention variant ends with in
// training and prefill, once it has formed its query, key and value heads.
#pragma once
#include "core/tensor.h"

namespace t6 {

// softmax(q kᵀ · scale + causal mask) v per head: q (B,Tq,H,dh), k and v (B,Tk,Hkv,dh) with Hkv dividing
// H (query head h reads key/value head h / (H/Hkv)); the Tq queries are the last Tq of the Tk positions.
// Returns the heads concatenated head-major: (B,Tq,H·dh). Where the backend prefers it (both backends,
// unless the heads are wider than the GPU kernels take), this is the fused flash_attention op
// (autograd/ops/flash_attention.cpp); elsewhere, and as the reference the tests compare the fused op
// with, it is composite_causal_attention: a batched matmul, a causal softmax and a second matmul.
Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale);
Tensor composite_causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale);

}  // namespace t6
