// Rotary position embedding, the spec's half-split form: for each row b of length dh and
// j < dh/2, the pair (b[j], b[j + dh/2]) is rotated by the angle θ_j(t) = t · 10000^(−2j/dh).
#include "autograd/ops.h"
#include "autograd/ops/checks.h"
#include "core/backend.h"

namespace t6 {

Tensor rope(const Tensor& x, const Tensor& positions) {
  check_float("rope", x);
  check_ids("rope", positions);
  T6_CHECK(x.ndim() >= 2 && x.size(-1) % 2 == 0, "rope: the last axis must have even length, got ",
           shape_str(x.shape()));
  T6_CHECK(positions.ndim() < x.ndim() &&
               std::equal(positions.shape().begin(), positions.shape().end(), x.shape().begin()),
           "rope: positions ", shape_str(positions.shape()), " must be a prefix of x.shape[:-1] for x ",
           shape_str(x.shape()));
  T6_CHECK(positions.device() == x.device(), "rope: x is on ", device_name(x.device()), " but positions on ",
           device_name(positions.device()));
  const int64_t dh = x.size(-1), inner = x.numel() / (positions.numel() * dh);
  const Tensor flat_positions = positions.contiguous_data().view({positions.numel()});
  Tensor y = empty_like(x);
  backend_of(x).rope(x.contiguous_data(), flat_positions, y, inner, false);
  if (Node* node = make_node("rope", y, {x})) {
    node->backward = [positions = node->save(flat_positions), inner](const Tensor& gy) -> Grads {
      // y = R(θ)·x per pair, and R(θ)ᵀ = R(−θ): the gradient is gy rotated back
      Tensor gx = empty(gy.shape(), gy.dtype(), gy.device());
      backend_of(gy).rope(gy.contiguous_data(), positions, gx, inner, true);
      return {gx};
    };
  }
  return y;
}

}  // namespace t6
