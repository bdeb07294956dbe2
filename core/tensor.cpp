#include "core/tensor.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <sstream>

#include "core/backend.h"

namespace t6 {

namespace {

std::shared_ptr<TensorImpl> new_impl(const Shape& shape, DType dtype, Device device) {
  for (int64_t s : shape) T6_CHECK(s >= 0, "cannot create a tensor of shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(device, static_cast<size_t>(numel_of(shape)) * dtype_size(dtype));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return impl;
}

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() { return DType::F32; }
template <>
constexpr DType dtype_of<double>() { return DType::F64; }
template <>
constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <>
constexpr DType dtype_of<uint16_t>() { return DType::BF16; }

}  // namespace

int64_t Tensor::size(int axis) const { return shape()[normalize_axis(axis, ndim(), "Tensor::size")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int i = ndim() - 1; i >= 0; --i) {
    if (shape()[i] != 1 && strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(storage()->data()) + offset() * static_cast<int64_t>(dtype_size(dtype()));
}

template <class T>
T* Tensor::data() const {
  T6_CHECK(dtype() == dtype_of<T>(), "Tensor::data: tensor holds ", dtype_name(dtype()), ", asked for ",
           dtype_name(dtype_of<T>()));
  T6_CHECK(device() == Device::CPU, "Tensor::data: tensor is on ", device_name(device()),
           "; move it to the CPU first (to_device(Device::CPU))");
  return static_cast<T*>(raw_data());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template int32_t* Tensor::data<int32_t>() const;
template uint16_t* Tensor::data<uint16_t>() const;

Tensor Tensor::as_strided(Shape shape, Shape strides, int64_t offset) const {
  T6_CHECK(shape.size() == strides.size(), "as_strided: shape ", shape_str(shape), " and strides ",
           shape_str(strides), " differ in length");
  // Every element the view can reach must lie inside the storage.
  if (numel_of(shape) > 0) {
    int64_t lowest = offset, highest = offset;
    for (size_t i = 0; i < shape.size(); ++i) {
      const int64_t reach = (shape[i] - 1) * strides[i];
      (reach < 0 ? lowest : highest) += reach;
    }
    const int64_t capacity = static_cast<int64_t>(storage()->bytes() / dtype_size(dtype()));
    T6_CHECK(lowest >= 0 && highest < capacity, "as_strided: view ", shape_str(shape), " with strides ",
             shape_str(strides), " at offset ", offset, " reaches outside a storage of ", capacity, " elements");
  }
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = dtype();
  return Tensor(impl);
}

Tensor Tensor::view(Shape new_shape) const {
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < new_shape.size(); ++i) {
    if (new_shape[i] == -1) {
      T6_CHECK(infer_at < 0, "view: only one dimension may be -1 in ", shape_str(new_shape));
      infer_at = static_cast<int64_t>(i);
    } else {
      known *= new_shape[i];
    }
  }
  if (infer_at >= 0) {
    T6_CHECK(known > 0 && numel() % known == 0, "view: cannot view ", shape_str(shape()), " as ",
             shape_str(new_shape));
    new_shape[infer_at] = numel() / known;
  }
  T6_CHECK(numel_of(new_shape) == numel(), "view: cannot view ", shape_str(shape()), " (", numel(),
           " elements) as ", shape_str(new_shape));
  T6_CHECK(is_contiguous(), "view: tensor of shape ", shape_str(shape()), " is not contiguous; use reshape()");
  Shape strides = contiguous_strides(new_shape);
  return as_strided(std::move(new_shape), std::move(strides), offset());
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = storage();
  impl->shape = shape();
  impl->strides = strides();
  impl->offset = offset();
  impl->dtype = dtype();
  return Tensor(impl);
}

Tensor Tensor::contiguous_data() const { return is_contiguous() ? detach() : clone_data(); }

Tensor Tensor::clone_data() const {
  Tensor out(new_impl(shape(), dtype(), device()));
  backend(device()).strided_copy(*this, out);
  return out;
}

Tensor Tensor::to_device(Device target) const {
  if (target == device()) return detach();
  Tensor source = contiguous_data();
  Tensor out(new_impl(shape(), dtype(), target));
  const size_t bytes = static_cast<size_t>(numel()) * dtype_size(dtype());
  if (bytes == 0) return out;
  if (target == Device::CPU) {
    backend(device()).copy_to_host(out.raw_data(), source.raw_data(), bytes);
  } else {
    backend(target).copy_from_host(out.raw_data(), source.raw_data(), bytes);
  }
  return out;
}

Tensor Tensor::to_dtype(DType target) const {
  if (target == dtype()) return detach();
  Tensor source = contiguous_data();
  Tensor out(new_impl(shape(), target, device()));
  backend(device()).cast(source, out);
  return out;
}

void Tensor::fill_(double value) {
  storage()->bump_version();
  if (is_contiguous()) {
    backend(device()).fill(*this, value);
    return;
  }
  Tensor filled = full(shape(), value, dtype(), device());
  backend(device()).strided_copy(filled, *this);
}

void Tensor::copy_(const Tensor& source) {
  T6_CHECK(source.shape() == shape(), "copy_: source shape ", shape_str(source.shape()),
           " differs from destination shape ", shape_str(shape()));
  Tensor s = source.to_device(device()).to_dtype(dtype());
  storage()->bump_version();
  backend(device()).strided_copy(s, *this);
}

void Tensor::add_(const Tensor& x, double alpha) {
  T6_CHECK(x.numel() == numel() && x.dtype() == dtype() && x.device() == device(), "add_: cannot add ",
           shape_str(x.shape()), " ", dtype_name(x.dtype()), " into ", shape_str(shape()), " ",
           dtype_name(dtype()));
  T6_CHECK(is_contiguous(), "add_: destination of shape ", shape_str(shape()), " must be contiguous");
  storage()->bump_version();
  backend(device()).axpy(alpha, x.contiguous_data(), *this);
}

void Tensor::scale_(double alpha) {
  T6_CHECK(is_contiguous(), "scale_: tensor of shape ", shape_str(shape()), " must be contiguous");
  storage()->bump_version();
  backend(device()).unary(UnaryOp::Scale, *this, *this, alpha);
}

double Tensor::item() const {
  T6_CHECK(numel() == 1, "item: tensor of shape ", shape_str(shape()), " has ", numel(),
           " elements, not exactly one");
  return to_double_vector()[0];
}

std::vector<double> Tensor::to_double_vector() const {
  Tensor host = to_device(Device::CPU).contiguous_data();
  std::vector<double> out(static_cast<size_t>(numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    switch (dtype()) {
      case DType::F32: out[i] = host.data<float>()[i]; break;
      case DType::F64: out[i] = host.data<double>()[i]; break;
      case DType::I32: out[i] = host.data<int32_t>()[i]; break;
      case DType::BF16: out[i] = bf16_to_float(host.data<uint16_t>()[i]); break;
    }
  }
  return out;
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor host = to_device(Device::CPU).contiguous_data();
  const T* p = host.data<T>();
  return std::vector<T>(p, p + numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;

std::string Tensor::str(int64_t max_values) const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream out;
  const std::vector<double> values = to_double_vector();
  const Shape& s = shape();
  // Nested brackets, one level per dimension; elided after max_values values.
  std::function<void(int, int64_t, int64_t&)> print = [&](int dim, int64_t base, int64_t& printed) {
    if (dim == ndim()) {
      char buf[32];
      std::snprintf(buf, sizeof buf, dtype() == DType::I32 ? "%.0f" : "%.6g", values[base]);
      out << buf;
      ++printed;
      return;
    }
    out << "[";
    const int64_t inner = numel_of(Shape(s.begin() + dim + 1, s.end()));
    for (int64_t i = 0; i < s[dim]; ++i) {
      if (printed >= max_values) {
        out << "...";
        break;
      }
      if (i) out << (dim + 1 == ndim() ? ", " : ",\n" + std::string(dim + 8, ' '));
      print(dim + 1, base + i * inner, printed);
    }
    out << "]";
  };
  int64_t printed = 0;
  out << "tensor(";
  print(0, 0, printed);
  out << ", shape=" << shape_str(s) << ", dtype=" << dtype_name(dtype()) << ", device=" << device_name(device());
  if (requires_grad()) out << ", requires_grad";
  out << ")";
  return out.str();
}

std::ostream& operator<<(std::ostream& out, const Tensor& t) { return out << t.str(); }

Tensor& Tensor::set_requires_grad(bool on) {
  T6_CHECK(is_leaf(), "set_requires_grad: only leaf tensors (not results of ops) can be marked; use detach()");
  T6_CHECK(!on || is_floating(dtype()), "set_requires_grad: a ", dtype_name(dtype()),
           " tensor cannot require gradients");
  impl().requires_grad = on;
  return *this;
}

Tensor empty(const Shape& shape, DType dtype, Device device) { return Tensor(new_impl(shape, dtype, device)); }

Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }

Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  backend(device).fill(t, value);
  return t;
}

Tensor arange(int64_t n, DType dtype, Device device) {
  std::vector<double> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) values[i] = static_cast<double>(i);
  return from_vector(values, {n}, dtype, device);
}

Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device()); }

Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }

Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype, Device device) {
  const Shape s = shape.empty() && values.size() != 1 ? Shape{static_cast<int64_t>(values.size())} : shape;
  T6_CHECK(numel_of(s) == static_cast<int64_t>(values.size()), "from_vector: ", values.size(),
           " values do not fill shape ", shape_str(s));
  Tensor host = empty(s, dtype, Device::CPU);
  for (size_t i = 0; i < values.size(); ++i) {
    switch (dtype) {
      case DType::F32: host.data<float>()[i] = static_cast<float>(values[i]); break;
      case DType::F64: host.data<double>()[i] = values[i]; break;
      case DType::I32: host.data<int32_t>()[i] = static_cast<int32_t>(values[i]); break;
      case DType::BF16: host.data<uint16_t>()[i] = float_to_bf16(static_cast<float>(values[i])); break;
    }
  }
  return host.to_device(device);
}

Tensor from_ints(const std::vector<int32_t>& values, const Shape& shape, Device device) {
  const Shape s = shape.empty() && values.size() != 1 ? Shape{static_cast<int64_t>(values.size())} : shape;
  T6_CHECK(numel_of(s) == static_cast<int64_t>(values.size()), "from_ints: ", values.size(),
           " values do not fill shape ", shape_str(s));
  Tensor host = empty(s, DType::I32, Device::CPU);
  if (!values.empty()) std::memcpy(host.data<int32_t>(), values.data(), values.size() * sizeof(int32_t));
  return host.to_device(device);
}

}  // namespace t6
