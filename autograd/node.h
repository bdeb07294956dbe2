// The autograd graph. Every differentiable op that sees an input requiring grad creates a Node on its
// output: the node remembers the inputs (the graph's edges), the tensors it saved for backward, and
// a closure that maps the output's gradient to one gradient per input. Tensor::backward()
// (autograd/engine.cpp) walks these nodes in reverse topological order.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace t6 {

using Grads = std::vector<Tensor>;  // one per input; an undefined Tensor means "no gradient"

class Node {
 public:
  explicit Node(std::string op_name) : name(std::move(op_name)) {}

  // Keeps `t` for backward and remembers its storage version, so the engine can report a later
  // in-place write instead of computing a silently wrong gradient. Returns the detached tensor to
  // capture in the backward closure (detached, so the output's node never owns the output itself).
  Tensor save(const Tensor& t);
  // Throws naming this op if any saved tensor was modified in place since it was saved.
  void check_saved_versions() const;
  // Drops the closure and everything it holds: what backward() does when it frees the graph.
  void release();

  std::string name;
  // The edges to the inputs: a leaf's own TensorImpl (backward fills its .grad), a non-leaf's graph_edge
  // (its shape and grad_fn, not its data: core/tensor.h).
  std::vector<std::shared_ptr<TensorImpl>> inputs;
  std::function<Grads(const Tensor& grad_output)> backward;
  bool released = false;

 private:
  struct Saved {
    std::shared_ptr<Storage> storage;
    uint64_t version;
  };
  std::vector<Saved> saved_;
};

// Creates the node for an op's output when gradients are being recorded and any input requires
// grad; returns null otherwise (then the op records nothing). Marks `output` as requiring grad.
Node* make_node(const char* op_name, Tensor& output, const std::vector<Tensor>& inputs);

// Gradient recording is on by default; NoGradGuard turns it off for a scope (evaluation, the
// optimizer step, numerical differentiation).
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace t6
