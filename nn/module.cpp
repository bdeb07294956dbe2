#include "nn/module.h"

#include "autograd/node.h"
#include "core/error.h"

namespace t6 {

Tensor Module::register_parameter(const std::string& name, const Shape& shape, double bound,
                                  const ParameterInit& init) {
  Tensor value = init.make(shape, bound);
  if (value.defined()) value.set_requires_grad(true);
  parameters_.push_back({{name, shape}, value});
  return value;
}

void Module::for_each_parameter(const std::string& prefix,
                                const std::function<void(const std::string&, const Parameter&)>& visit) const {
  for (const Parameter& p : parameters_) visit(prefix + p.spec.name, p);
  for (const auto& [name, child] : children_) child->for_each_parameter(prefix + name + ".", visit);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for_each_parameter("", [&](const std::string& name, const Parameter& p) {
    T6_CHECK(p.value.defined(), "Module: parameter \"", name, "\" has no value; the model was built shapes-only, "
             "for its names and shapes");
    out.emplace_back(name, p.value);
  });
  return out;
}

std::vector<ParameterSpec> Module::parameter_layout() const {
  std::vector<ParameterSpec> out;
  for_each_parameter("", [&](const std::string& name, const Parameter& p) { out.push_back({name, p.spec.shape}); });
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (const ParameterSpec& p : parameter_layout()) n += numel_of(p.shape);
  return n;
}

void Module::zero_grad() {
  for (auto& [name, p] : named_parameters()) p.zero_grad();
}

namespace {
// Points the parameter's TensorImpl at new data, so every handle to it sees the change.
void replace_data(const Tensor& param, const Tensor& data) {
  TensorImpl& impl = param.impl();
  impl.storage = data.storage();
  impl.strides = data.strides();
  impl.offset = data.offset();
  impl.dtype = data.dtype();
  impl.grad.reset();
}
}  // namespace

void Module::fill_uniform(Generator& gen, double bound) {
  NoGradGuard no_grad;
  for (auto& [name, p] : named_parameters()) p.copy_(uniform(p.shape(), -bound, bound, gen, p.dtype()));
}

void Module::to(Device device) {
  for (auto& [name, p] : named_parameters())
    if (p.device() != device) replace_data(p, p.to_device(device));
}

void Module::to(DType dtype) {
  for (auto& [name, p] : named_parameters())
    if (p.dtype() != dtype) replace_data(p, p.to_dtype(dtype));
}

}  // namespace t6
