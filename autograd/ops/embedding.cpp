// Embedding lookup: a gather of rows forward, a scatter-add of rows backward.
#include "autograd/ops.h"
#include "autograd/ops/checks.h"
#include "core/backend.h"

namespace t6 {

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  check_float("embedding", weight);
  check_ids("embedding", ids);
  T6_CHECK(weight.ndim() == 2, "embedding: weight must be [V, d], got ", shape_str(weight.shape()));
  T6_CHECK(ids.device() == weight.device(), "embedding: weight is on ", device_name(weight.device()), " but ids on ",
           device_name(ids.device()));
  const int64_t vocab = weight.size(0), dim = weight.size(1);
  const Tensor flat_ids = ids.contiguous_data().view({ids.numel()});
  // Where the backend checks_ids_at_once() the ids are in host memory and checked here, at once.
  // Elsewhere they are not read back (that would make every step wait for the device): the kernel
  // reports a bad id at the backend's next wait, with the same words (core/backend.h, "deferred errors").
  if (backend_of(ids).checks_ids_at_once()) {
    const int32_t* host_ids = flat_ids.data<int32_t>();
    for (int64_t i = 0; i < flat_ids.numel(); ++i) {
      T6_CHECK(host_ids[i] >= 0 && host_ids[i] < vocab, "embedding: token id ", host_ids[i], " at position ", i,
               " is outside [0, ", vocab, "); ids must be below vocab_size");
    }
  }
  Shape out_shape = ids.shape();
  out_shape.push_back(dim);
  Tensor out = empty({ids.numel(), dim}, weight.dtype(), weight.device());
  backend_of(weight).embedding_forward(weight.contiguous_data(), flat_ids, out);
  out = out.view(out_shape);
  if (Node* node = make_node("embedding", out, {weight})) {
    node->backward = [ids = node->save(flat_ids), weight_shape = weight.shape()](const Tensor& gout) -> Grads {
      // out[i] = weight[ids[i]]: every row i sends its gradient back to row ids[i], summed over repeats
      Tensor gweight = zeros(weight_shape, gout.dtype(), gout.device());
      backend_of(gout).embedding_backward(ids, gout.contiguous_data().view({ids.numel(), weight_shape[1]}), gweight);
      return {gweight};
    };
  }
  return out;
}

}  // namespace t6
