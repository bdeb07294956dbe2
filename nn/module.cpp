#include "nn/module.h"

#include "autograd/node.h"

namespace t6 {

Tensor Module::register_parameter(const std::string& name, Tensor value) {
  value.set_requires_grad(true);
  parameters_.emplace_back(name, value);
  return value;
}

void Module::collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, p] : parameters_) out.emplace_back(prefix + name, p);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, p] : named_parameters()) n += p.numel();
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

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

}  // namespace t6
