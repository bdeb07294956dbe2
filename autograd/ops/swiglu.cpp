// SwiGLU's gate, silu(gate) ⊙ up, fused: one pass forward and one backward, where the composite
// silu(gate) * up runs two forward passes and three backward ones and keeps silu(gate) for backward.
// Under mixed precision it may write bfloat16 for c_proj, the product that reads it (as rms_norm does).
#include "autograd/ops.h"
#include "autograd/ops/checks.h"
#include "core/backend.h"

namespace t6 {

Tensor swiglu(const Tensor& gate, const Tensor& up, std::optional<DType> out_dtype) {
  check_same_kind("swiglu", gate, up);
  T6_CHECK(gate.shape() == up.shape(), "swiglu: gate ", shape_str(gate.shape()), " and up ", shape_str(up.shape()),
           " must have one shape");
  const Tensor g = gate.contiguous_data(), u = up.contiguous_data();
  Tensor out = empty(gate.shape(), output_dtype("swiglu", gate, out_dtype), gate.device());
  backend_of(gate).swiglu_forward(g, u, out);
  if (Node* node = make_node("swiglu", out, {gate, up})) {
    node->backward = [g = node->save(g), u = node->save(u)](const Tensor& gout) -> Grads {
      // out = silu(g) ⊙ u: dg = gout ⊙ u ⊙ silu'(g), du = gout ⊙ silu(g), both from one kernel
      Tensor ggate = empty_like(g), gup = empty_like(u);
      backend_of(g).swiglu_backward(g, u, gout.to_dtype(g.dtype()).contiguous_data(), ggate, gup);
      return {ggate, gup};
    };
  }
  return out;
}

}  // namespace t6
