#include "autograd/node.h"

namespace t6 {

namespace {
thread_local bool grad_mode = true;
}  // namespace

bool grad_enabled() { return grad_mode; }

NoGradGuard::NoGradGuard() : previous_(grad_mode) { grad_mode = false; }

NoGradGuard::~NoGradGuard() { grad_mode = previous_; }

Tensor Node::save(const Tensor& t) {
  saved_.push_back({t.storage(), t.version()});
  return t.detach();
}

void Node::check_saved_versions() const {
  for (const Saved& s : saved_) {
    T6_CHECK(s.storage->version() == s.version, "autograd: a tensor that '", name,
             "' saved for backward was modified in place after the forward pass (version ", s.version,
             " became ", s.storage->version(), "); write to a copy (clone_data()) instead");
  }
}

void Node::release() {
  backward = nullptr;
  inputs.clear();
  saved_.clear();
  released = true;
}

Node* make_node(const char* op_name, Tensor& output, const std::vector<Tensor>& inputs) {
  if (!grad_mode) return nullptr;
  bool any = false;
  for (const Tensor& in : inputs) any = any || (in.defined() && in.requires_grad());
  if (!any) return nullptr;
  auto node = std::make_shared<Node>(op_name);
  for (const Tensor& in : inputs) {
    const std::shared_ptr<TensorImpl> edge = in.defined() ? in.impl().graph_edge : nullptr;
    node->inputs.push_back(edge ? edge : in.defined() ? in.impl_ptr() : nullptr);
  }
  TensorImpl& out = output.impl();
  out.requires_grad = true;
  out.grad_fn = node;
  auto edge = std::make_shared<TensorImpl>();
  edge->shape = out.shape, edge->strides = out.strides, edge->offset = out.offset, edge->dtype = out.dtype;
  edge->requires_grad = true;
  edge->grad_fn = node;
  out.graph_edge = std::move(edge);
  return node.get();
}

}  // namespace t6
