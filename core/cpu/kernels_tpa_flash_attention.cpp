// TPA's fused causal attention on the CPU: the twin of cuda/kernels_tpa_flash_attention.cu and the
// reference of its parity tests. The heads are formed into transient tensors by this backend's
// tpa_product kernel and attended by its flash_attention kernel (core/tpa_flash_by_heads.h), in the
// inputs' float dtype: the same steps as the CUDA path without its bfloat16 rounding, built from two
// kernels with tests of their own (they time themselves in a profile). Shapes and dtypes are in
// core/backend.h.
#include "core/cpu/cpu_backend.h"
#include "core/tpa_flash_by_heads.h"

namespace t6::cpu {

void CpuBackend::tpa_flash_attention_forward(const TPAFlashAttention& p, const TPAFactorTensors& f, Tensor& out,
                                             Tensor& lse) {
  T6_CHECK(!p.bf16_products, "cpu tpa_flash_attention_forward: this backend has no bfloat16 products");
  tpa_flash_attention_by_heads_forward(*this, p, f, out, lse);
}

void CpuBackend::tpa_flash_attention_backward(const TPAFlashAttention& p, const TPAFactorTensors& f, const Tensor& out,
                                              const Tensor& lse, const Tensor& gout, TPAFactorTensors& grads) {
  T6_CHECK(!p.bf16_products, "cpu tpa_flash_attention_backward: this backend has no bfloat16 products");
  tpa_flash_attention_by_heads_backward(*this, p, f, out, lse, gout, grads);
}

}  // namespace t6::cpu
