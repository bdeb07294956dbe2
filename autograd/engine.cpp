// Reverse-mode automatic differentiation: Tensor::backward().
//
// 1. Collect every tensor reachable from the root through grad_fn edges, in topological order, and
//    count the edges (paths) into each leaf.
// 2. Walk that order backwards: each node turns its output's gradient into its inputs' gradients;
//    gradients arriving at one tensor along several paths (a diamond) are summed.
// 3. A leaf that requires grad is finished as soon as the last path into it has run: its summed
//    gradient accumulates into .grad (so calls add up until zero_grad()) and on_grad_ready is told,
//    while the walk goes on (data-parallel training starts reducing gradients there).
// 4. Unless retain_graph, free each node's saved tensors as soon as it has run.
#include <unordered_map>
#include <unordered_set>

#include "autograd/node.h"
#include "autograd/ops.h"

namespace t6 {

namespace {

using TensorOrder = std::vector<std::shared_ptr<TensorImpl>>;
using GradMap = std::unordered_map<TensorImpl*, Tensor>;

// Post-order DFS without recursion (graphs of deep models are thousands of nodes long). The order
// owns its tensors: freeing a node's inputs during backward must not free a tensor still to visit.
TensorOrder topological_order(const std::shared_ptr<TensorImpl>& root) {
  TensorOrder order;
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

// How many edges of the graph lead into each leaf (a tensor used twice by one op counts twice).
std::unordered_map<TensorImpl*, int> paths_into_leaves(const TensorOrder& order) {
  std::unordered_map<TensorImpl*, int> paths;
  for (const std::shared_ptr<TensorImpl>& t : order) {
    if (!t->grad_fn) continue;
    for (const std::shared_ptr<TensorImpl>& input : t->grad_fn->inputs)
      if (input && input->requires_grad && !input->grad_fn) ++paths[input.get()];
  }
  return paths;
}

// Every path into `leaf` has run: the sum of what arrived (if anything did) goes into its .grad,
// which then holds its final value of this backward().
void finish_leaf(const std::shared_ptr<TensorImpl>& leaf, GradMap& grads, const GradReadyHook& on_grad_ready) {
  auto found = grads.find(leaf.get());
  if (found == grads.end()) return;  // no gradient reached it
  Tensor grad = std::move(found->second);
  grads.erase(found);
  if (leaf->grad) {
    Tensor(leaf->grad).add_(grad);
  } else {
    // A gradient that nothing else refers to (no view, no saved tensor) is adopted as it is: a copy
    // of every parameter's gradient at every step would only move memory. Otherwise the leaf owns a copy.
    const bool sole_owner = grad.impl_ptr().use_count() == 1 && grad.storage().use_count() == 1 && grad.is_contiguous();
    leaf->grad = sole_owner ? grad.impl_ptr() : grad.clone_data().impl_ptr();
  }
  if (on_grad_ready) on_grad_ready(Tensor(leaf));
}

// The gradients of node's inputs, from its output's gradient.
Grads run_node(Node& node, const Tensor& grad) {
  T6_CHECK(!node.released, "backward: the graph through '", node.name,
           "' was already freed by an earlier backward(); pass retain_graph=true to that call");
  node.check_saved_versions();
  Grads input_grads = node.backward(grad);
  T6_CHECK(input_grads.size() == node.inputs.size(), "autograd: '", node.name, "' returned ", input_grads.size(),
           " gradients for ", node.inputs.size(), " inputs");
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    const TensorImpl* input = node.inputs[i].get();
    if (!input || !input_grads[i].defined()) continue;
    T6_CHECK(input_grads[i].shape() == input->shape, "autograd: '", node.name, "' returned a gradient of shape ",
             shape_str(input_grads[i].shape()), " for input ", i, " of shape ", shape_str(input->shape));
  }
  return input_grads;
}

}  // namespace

void Tensor::backward(const Tensor& upstream, bool retain_graph, const GradReadyHook& on_grad_ready) const {
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
  GradMap grads{{impl_ptr().get(), seed}};
  if (is_leaf()) {  // no path to wait for
    finish_leaf(impl_ptr(), grads, on_grad_ready);
    return;
  }
  const TensorOrder order = topological_order(impl_ptr());
  std::unordered_map<TensorImpl*, int> paths_left = paths_into_leaves(order);

  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    TensorImpl* impl = it->get();
    if (!impl->grad_fn) continue;  // a leaf: finished when its last path has run, below
    Node& node = *impl->grad_fn;
    auto found = grads.find(impl);
    const bool reached = found != grads.end();  // else no gradient reached it: its inputs get none from it
    Grads input_grads(node.inputs.size());
    if (reached) {
      input_grads = run_node(node, found->second);
      grads.erase(found);
    }
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const std::shared_ptr<TensorImpl>& input = node.inputs[i];
      if (!input || !input->requires_grad) continue;
      if (input_grads[i].defined()) {
        auto [slot, inserted] = grads.try_emplace(input.get(), input_grads[i]);
        if (!inserted) slot->second = add(slot->second, input_grads[i]);  // a second path into this tensor
      }
      if (!input->grad_fn && --paths_left[input.get()] == 0) finish_leaf(input, grads, on_grad_ready);
    }
    if (reached && !retain_graph) node.release();
  }
}

}  // namespace t6
