// Module: a named tree of parameters, like torch.nn.Module. Parameter names are dotted paths built from
// the registration names ("transformer.h.0.attn.c_proj.weight"), exactly the spec's state-dict names,
// so checkpoints map one-to-one onto the authors' PyTorch models.
//
// Each module declares its parameters in its constructor, with name, shape and initial distribution,
// and takes their values from a ParameterInit. A tree built shapes-only knows every name and shape but
// holds no values, so the names and shapes are written once, where the modules that use them live.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/random.h"
#include "core/shape.h"
#include "core/tensor.h"
#include "nn/parameter_init.h"

namespace t6 {

struct ParameterSpec {
  std::string name;  // the spec's state-dict name
  Shape shape;       // [out, in] for linear layers
};

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter once, in registration order (depth first), with its dotted name. Throws for a tree
  // built shapes-only, which has no values.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<Tensor> parameters() const;
  // The same names with their shapes: available shapes-only too.
  std::vector<ParameterSpec> parameter_layout() const;
  int64_t parameter_count() const;
  void zero_grad();
  // Overwrites every parameter, in order, with uniform(−bound, bound) draws from `gen`. For checks:
  // the spec's initialisation zeroes the c_proj layers, which would hide whole paths from a test.
  void fill_uniform(Generator& gen, double bound);
  // Moves or converts every parameter in place: handles held anywhere see the new storage.
  void to(Device device);
  void to(DType dtype);  // e.g. float64 for gradient checks

 protected:
  // Declares a parameter leaf (requires grad) of this module and returns its value from `init` (a handle
  // to the same data; undefined when shapes only). bound: uniform(−bound, bound), or zeros for 0.
  Tensor register_parameter(const std::string& name, const Shape& shape, double bound, const ParameterInit& init);
  template <class M>
  M& register_module(const std::string& name, std::unique_ptr<M> child) {
    M& ref = *child;
    children_.emplace_back(name, std::move(child));
    return ref;
  }

 private:
  struct Parameter {
    ParameterSpec spec;  // the name local to this module
    Tensor value;        // undefined when built shapes-only
  };
  // Calls visit(dotted name, parameter) for the subtree, depth first in registration order.
  void for_each_parameter(const std::string& prefix,
                          const std::function<void(const std::string&, const Parameter&)>& visit) const;

  std::vector<Parameter> parameters_;
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
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
