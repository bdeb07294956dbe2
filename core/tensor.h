// Tensor: a shape, strides and an offset over shared Storage, plus the autograd slots (requires_grad,
// grad, grad_fn). A Tensor is a cheap handle: copies share the same TensorImpl.
//
// Differentiable operations are free functions in autograd/ops.h; this header holds only what every
// layer needs: metadata, views that never copy, raw data access, in-place writes and printing.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"
#include "core/storage.h"

namespace t6 {

class Node;  // autograd/node.h
class Tensor;
// Told by backward() that a leaf's .grad holds its final value: every path into the leaf has run.
using GradReadyHook = std::function<void(const Tensor& leaf)>;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements, into storage
  DType dtype = DType::F32;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf
  std::shared_ptr<Node> grad_fn;     // the op that produced this tensor (null for leaves)
  // What the autograd graph's edges hold for a non-leaf: this tensor's metadata and grad_fn without its
  // storage. An edge that owned the tensor itself would keep every intermediate of a forward pass alive
  // until its consumer's backward ran, needed or not; the nodes keep what backward reads (Node::save).
  std::shared_ptr<TensorImpl> graph_edge;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  int ndim() const { return static_cast<int>(impl().shape.size()); }
  int64_t size(int axis) const;  // negative axes count from the end
  int64_t numel() const { return numel_of(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  bool same_storage(const Tensor& other) const { return storage() == other.storage(); }

  // Pointer to the first element (storage + offset), on whichever device holds it.
  void* raw_data() const;
  // Typed pointer to the first element on the CPU; throws if dtype or device do not match.
  template <class T>
  T* data() const;

  // --- views (no copy; the result shares storage) -----------------------------------------------
  Tensor as_strided(Shape shape, Shape strides, int64_t offset) const;
  Tensor view(Shape shape) const;  // contiguous tensors only; one dimension may be -1
  Tensor detach() const;           // same data, cut from the graph

  // A contiguous tensor with the same values: itself when already contiguous, else a copy.
  // Not recorded by autograd (autograd/ops.h has the differentiable `contiguous`).
  Tensor contiguous_data() const;
  Tensor clone_data() const;  // always a fresh contiguous copy, not recorded by autograd
  Tensor to_device(Device device) const;  // not recorded; the differentiable one is t6::to()
  Tensor to_dtype(DType dtype) const;     // not recorded; the differentiable one is t6::cast()

  // --- in-place writes: each bumps the storage version ----------------------------------------
  void fill_(double value);
  void copy_(const Tensor& source);          // same shape; any device/dtype/strides
  void add_(const Tensor& x, double alpha = 1.0);  // this += alpha * x (same shape, contiguous)
  void scale_(double alpha);
  uint64_t version() const { return storage()->version(); }

  // --- reading values back ----------------------------------------------------------------------
  double item() const;  // one-element tensors
  std::vector<double> to_double_vector() const;
  template <class T>
  std::vector<T> to_vector() const;
  std::string str(int64_t max_values = 64) const;  // readable printing for debugging

  // --- autograd slots (behaviour lives in autograd/) ------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool on = true);  // leaves only
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }
  void set_grad(const Tensor& g) { impl().grad = g.impl_; }
  void zero_grad() { impl().grad.reset(); }
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  // Runs reverse-mode autodiff from this tensor (autograd/engine.cpp). Without an upstream gradient
  // the tensor must hold one element, whose gradient is taken as 1. on_grad_ready, when given, is
  // called once for each leaf that a gradient reaches, as soon as its .grad is final for this call.
  void backward(const Tensor& upstream = Tensor(), bool retain_graph = false,
                const GradReadyHook& on_grad_ready = {}) const;

  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  TensorImpl& impl() const {
    T6_CHECK(impl_ != nullptr, "t6: use of an undefined (empty) Tensor");
    return *impl_;
  }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& out, const Tensor& t);

// --- creation ------------------------------------------------------------------------------------
Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = Device::CPU);
Tensor arange(int64_t n, DType dtype = DType::F32, Device device = Device::CPU);  // 0,1,…,n-1
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
// Copies `values` (row-major) into a new tensor of `shape` (default: 1-D) and `dtype`.
Tensor from_vector(const std::vector<double>& values, const Shape& shape = {}, DType dtype = DType::F32,
                   Device device = Device::CPU);
Tensor from_ints(const std::vector<int32_t>& values, const Shape& shape = {}, Device device = Device::CPU);

}  // namespace t6
