// Mean cross-entropy over logits with an ignore index, fused: the forward keeps only one number per
// row (its logsumexp) for the backward, never the [N, V] probabilities.
#include "autograd/ops.h"
#include "autograd/ops/checks.h"
#include "core/backend.h"

namespace t6 {

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int ignore_index) {
  check_float("cross_entropy", logits);
  check_ids("cross_entropy", targets);
  T6_CHECK(ignore_index == -1, "cross_entropy: only ignore_index = -1 is supported, got ", ignore_index);
  T6_CHECK(logits.ndim() >= 1 && targets.numel() * logits.size(-1) == logits.numel() &&
               std::equal(targets.shape().begin(), targets.shape().end(), logits.shape().begin()),
           "cross_entropy: logits ", shape_str(logits.shape()), " need targets of shape [...] = logits shape without "
           "the last axis, got ", shape_str(targets.shape()));
  T6_CHECK(targets.device() == logits.device(), "cross_entropy: logits are on ", device_name(logits.device()),
           " but targets on ", device_name(targets.device()));
  const int64_t n = targets.numel(), vocab = logits.size(-1);
  const Tensor flat_logits = logits.contiguous_data().view({n, vocab});
  const Tensor flat_targets = targets.contiguous_data().view({n});
  Tensor losses = empty({n}, logits.dtype(), logits.device());
  Tensor lse = empty({n}, logits.dtype(), logits.device());
  // max(1, count of targets that are not ignored), left on the device: reading targets or a count back
  // would make every training step wait for it. A bad target throws from cross_entropy_forward where
  // the backend checks_ids_at_once(), else at the backend's next wait for the device (core/backend.h,
  // "deferred errors").
  Tensor divisor = empty({}, logits.dtype(), logits.device());
  backend_of(logits).count_targets(flat_targets, vocab, divisor);
  backend_of(logits).cross_entropy_forward(flat_logits, flat_targets, losses, lse);

  // Mean over the targets that count; ignored rows have loss 0. No counted target → loss 0, grad 0.
  Tensor loss = div(sum(losses), divisor);  // not recorded: neither carries a graph
  if (Node* node = make_node("cross_entropy", loss, {logits})) {
    node->backward = [logits = node->save(flat_logits), targets = node->save(flat_targets), lse = node->save(lse),
                      divisor = node->save(divisor), shape = logits.shape()](const Tensor& gloss) -> Grads {
      // loss = (1/count) Σ_i (lse_i − x[i, t_i]): each row gets gloss/count · (softmax(x_i) − onehot(t_i))
      Tensor grad_rows = mul(ones(lse.shape(), lse.dtype(), lse.device()), div(gloss, divisor));
      Tensor glogits = empty_like(logits);
      backend_of(logits).cross_entropy_backward(logits, targets, lse, grad_rows, glogits);
      return {glogits.view(shape)};
    };
  }
  return loss;
}

}  // namespace t6
