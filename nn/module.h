// Module: a named tree of parameters, like torch.nn.Module. Parameter names are dotted paths built from
// the registration names ("transformer.h.0.attn.c_proj.weight"), exactly the spec's state-dict names,
// so checkpoints map one-to-one onto the authors' PyTorch models.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"

namespace t6 {

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter once, in registration order (depth first), with its dotted name.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<Tensor> parameters() const;
  int64_t parameter_count() const;
  void zero_grad();
  // Training or evaluation mode, for the whole subtree. (T6 has no dropout; the flag is kept for
  // modules that behave differently when training.)
  void train(bool on = true);
  bool training() const { return training_; }
  // Overwrites every parameter, in order, with uniform(−bound, bound) draws from `gen`. For checks:
  // the spec's initialisation zeroes the c_proj layers, which would hide whole paths from a test.
  void fill_uniform(Generator& gen, double bound);
  // Moves or converts every parameter in place: handles held anywhere see the new storage.
  void to(Device device);
  void to(DType dtype);  // e.g. float64 for gradient checks

 protected:
  // Registers a parameter leaf (requires grad) under `name` and returns it (a handle to the same data).
  Tensor register_parameter(const std::string& name, Tensor value);
  template <class M>
  M& register_module(const std::string& name, std::unique_ptr<M> child) {
    M& ref = *child;
    children_.emplace_back(name, std::move(child));
    return ref;
  }

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const;

  std::vector<std::pair<std::string, Tensor>> parameters_;
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
  bool training_ = true;
};

// A container whose children are named 0, 1, 2, … ("transformer.h.3").
class ModuleList : public Module {
 public:
  template <class M>
  M& append(std::unique_ptr<M> child) {
    M& ref = *child;
    items_.push_back(&ref);
    register_module(std::to_string(items_.size() - 1), std::move(child));
    return ref;
  }
  size_t size() const { return items_.size(); }
  Module& operator[](size_t i) const { return *items_[i]; }

 private:
  std::vector<Module*> items_;
};

}  // namespace t6
