// Reverse-mode automatic differentiation: Tensor::backward().
//
// 1. Collect every tensor reachable from the root through grad_fn edges, in topological order.
// 2. Walk that order backwards: each node turns its output's gradient into its inputs' gradients;
//    gradients arriving at one tensor along several paths (a diamond) are summed.
// 3. Leaves that require grad accumulate into .grad (so calls add up until zero_grad()).
// 4. Unless retain_graph, free each node's saved tensors as soon as it has run.
#include <unordered_map>
#include <unordered_set>

#include "autograd/node.h"
#include "autograd/ops.h"

namespace t6 {

namespace {

// Post-order DFS without recursion (graphs of deep models are thousands of nodes long). The order
// owns its tensors: freeing a node's inputs during backward must not free a tensor still to visit.
std::vector<std::shared_ptr<TensorImpl>> topological_order(const std::shared_ptr<TensorImpl>& root) {
  std::vector<std::shared_ptr<TensorImpl>> order;
  std::unordered_set<TensorImpl*> visited{root.get()};
  std::vector<std::pair<std::shared_ptr<TensorImpl>, size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    const Node* node = stack.back().first->grad_fn.get();
    size_t& next_child = stack.back().second;
    if (node && next_child < node->inputs.size()) {
      const std::shared_ptr<TensorImpl>& child = node->inputs[next_child++];
      if (child && child->requires_grad && visited.insert(child.get()).second) stack.push_back({child, 0});
    } else {
      order.push_back(std::move(stack.back().first));
      stack.pop_back();
    }
  }
  return order;  // inputs before the tensors computed from them
}

}  // namespace

void Tensor::backward(const Tensor& upstream, bool retain_graph) const {
  T6_CHECK(requires_grad(), "backward: this tensor does not require grad (no input of the computation "
                            "required grad, or it was computed under NoGradGuard)");
  Tensor seed = upstream;
  if (!seed.defined()) {
    T6_CHECK(numel() == 1, "backward: tensor of shape ", shape_str(shape()),
             " is not a scalar; pass the upstream gradient explicitly");
    seed = ones(shape(), dtype(), device());
  }
  T6_CHECK(seed.shape() == shape() && seed.dtype() == dtype(), "backward: upstream gradient ",
           shape_str(seed.shape()), " ", dtype_name(seed.dtype()), " does not match the tensor ",
           shape_str(shape()), " ", dtype_name(dtype()));

  NoGradGuard no_grad;  // gradients are computed with ops, but are not themselves recorded
  const std::vector<std::shared_ptr<TensorImpl>> order = topological_order(impl_ptr());
  std::unordered_map<TensorImpl*, Tensor> grads{{impl_ptr().get(), seed}};

  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    TensorImpl* impl = it->get();
    auto found = grads.find(impl);
    if (found == grads.end()) continue;  // no gradient reached this tensor
    Tensor grad = std::move(found->second);
    grads.erase(found);

    if (!impl->grad_fn) {  // a leaf: accumulate into .grad, owning its own copy
      if (impl->grad) {
        Tensor(impl->grad).add_(grad);
      } else {
        // A gradient that nothing else refers to (no view, no saved tensor) is adopted as it is: a
        // copy of every parameter's gradient at every step would only move memory.
        const bool sole_owner =
            grad.impl_ptr().use_count() == 1 && grad.storage().use_count() == 1 && grad.is_contiguous();
        impl->grad = sole_owner ? grad.impl_ptr() : grad.clone_data().impl_ptr();
      }
      continue;
    }
    Node& node = *impl->grad_fn;
    T6_CHECK(!node.released, "backward: the graph through '", node.name,
             "' was already freed by an earlier backward(); pass retain_graph=true to that call");
    node.check_saved_versions();
    Grads input_grads = node.backward(grad);
    T6_CHECK(input_grads.size() == node.inputs.size(), "autograd: '", node.name, "' returned ",
             input_grads.size(), " gradients for ", node.inputs.size(), " inputs");
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      TensorImpl* input = node.inputs[i].get();
      if (!input || !input->requires_grad || !input_grads[i].defined()) continue;
      T6_CHECK(input_grads[i].shape() == input->shape, "autograd: '", node.name, "' returned a gradient of shape ",
               shape_str(input_grads[i].shape()), " for input ", i, " of shape ", shape_str(input->shape));
      auto [slot, inserted] = grads.try_emplace(input, input_grads[i]);
      if (!inserted) slot->second = add(slot->second, input_grads[i]);  // a second path into this tensor
    }
    if (!retain_graph) node.release();
  }
}

}  // namespace t6
