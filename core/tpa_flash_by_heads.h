// tpa_flash_attention (core/backend.h) composed from a backend's own tpa_product and flash_attention
// kernels: the heads are formed into transient (B,T,H,dh) tensors, attended, and (backward) their
// gradients contracted back onto the factors. The CPU backend's kernel is exactly this (the twin of
// the fused CUDA kernels), and the CUDA backend takes this path where its tensor-core kernels do not
// apply. Nothing here is kept past the call. With bf16_products, bfloat16 factors are widened to
// float32 for tpa_product and the heads rounded to bfloat16 for flash_attention.
#pragma once
#include "core/backend.h"

namespace t6 {

void tpa_flash_attention_by_heads_forward(Backend& backend, const Backend::TPAFlashAttention& p,
                                          const Backend::TPAFactorTensors& f, Tensor& out, Tensor& lse);
void tpa_flash_attention_by_heads_backward(Backend& backend, const Backend::TPAFlashAttention& p,
                                           const Backend::TPAFactorTensors& f, const Tensor& out, const Tensor& lse,
                                           const Tensor& gout, Backend::TPAFactorTensors& grads);

// flash_attention's shape for the heads of p (Tq = Tk = T, one key/value head per query head).
Backend::FlashAttention tpa_attention_shape(const Backend::TPAFlashAttention& p);

// The factor gradients from the heads' gradients gq, gk, gv (B,T,H,dh, out's dtype), by
// tpa_product_backward: grads.a_k, grads.b_k from gk and so on (plain query: grads.b_q = gq), written
// in the dtype of each gradient tensor.
void tpa_factor_gradients(Backend& backend, const Backend::TPAFlashAttention& p, const Backend::TPAFactorTensors& f,
                          const Tensor& gq, const Tensor& gk, const Tensor& gv, Backend::TPAFactorTensors& grads);

}  // namespace t6
