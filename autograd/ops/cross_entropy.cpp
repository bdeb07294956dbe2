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
  const int64_t bad = backend_of(logits).cross_entropy_forward(flat_logits, flat_targets, losses, lse);
  T6_CHECK(bad == 0, "cross_entropy: ", bad, " target ids lie outside [-1, ", vocab,
           "); every target must be a token id below vocab_size or -1 (ignored)");

  int64_t counted = 0;
  for (int32_t t : flat_targets.to_vector<int32_t>()) counted += (t != ignore_index);
  // Mean over the targets that count; ignored rows have loss 0. No counted target → loss 0, grad 0.
  const double inv_count = counted > 0 ? 1.0 / static_cast<double>(counted) : 0.0;
  Tensor loss = scale(sum(losses), inv_count);  // not recorded: losses carries no graph
  if (Node* node = make_node("cross_entropy", loss, {logits})) {
    node->backward = [logits = node->save(flat_logits), targets = node->save(flat_targets), lse = node->save(lse),
                      inv_count, shape = logits.shape()](const Tensor& gloss) -> Grads {
      // loss = (1/count) Σ_i (lse_i − x[i, t_i]): each row gets gloss/count · (softmax(x_i) − onehot(t_i))
      Tensor grad_rows = scale(mul(ones(lse.shape(), lse.dtype(), lse.device()), gloss), inv_count);
      Tensor glogits = empty_like(logits);
      backend_of(logits).cross_entropy_backward(logits, targets, lse, grad_rows, glogits);
      return {glogits.view(shape)};
    };
  }
  return loss;
}

}  // namespace t6
