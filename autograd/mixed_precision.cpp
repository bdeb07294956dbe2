// The bf16 matmul switch: one flag per thread, like the grad mode in autograd/node.cpp, the one
// remembered bfloat16 copy of bf16_copy and the weight copies of bf16_weight.
#include "autograd/mixed_precision.h"

#include <map>
#include <memory>

#include "autograd/node.h"
#include "core/backend.h"

namespace t6 {

namespace {

thread_local bool bf16_matmul = false;

// The source of the remembered copy, by identity: a weak pointer, so the memory never keeps an
// activation alive, and a freed storage can never match a new one at the same address.
struct RememberedCopy {
  std::weak_ptr<Storage> storage;
  int64_t offset = 0;
  Shape shape, strides;
  uint64_t version = 0;
  Tensor copy;

  bool holds(const Tensor& x) const {
    return copy.defined() && storage.lock() == x.storage() && offset == x.offset() && shape == x.shape() &&
           strides == x.strides() && version == x.version();
  }
};
thread_local RememberedCopy remembered;

RememberedCopy copy_of(const Tensor& x) {
  return {x.storage(), x.offset(), x.shape(), x.strides(), x.version(), x.to_dtype(DType::BF16)};
}

// bf16_weight's copies, one per weight, by storage and offset (weights may be views of one storage).
thread_local std::map<std::pair<const Storage*, int64_t>, RememberedCopy> weight_copies;

}  // namespace

bool bf16_matmul_enabled() { return bf16_matmul; }

DType product_input_dtype(const Tensor& x) {
  return bf16_matmul && x.dtype() == DType::F32 && backend_of(x).multiplies_bf16() ? DType::BF16 : x.dtype();
}

Tensor bf16_copy(const Tensor& x) {
  if (x.dtype() == DType::BF16) return x;
  if (!remembered.holds(x)) remembered = copy_of(x);
  return remembered.copy;
}

Tensor bf16_weight(const Tensor& w) {
  if (!grad_enabled() || !w.is_leaf() || !w.requires_grad()) return w.to_dtype(DType::BF16);
  const std::pair<const Storage*, int64_t> key{w.storage().get(), w.offset()};
  const auto found = weight_copies.find(key);
  if (found != weight_copies.end() && found->second.holds(w)) return found->second.copy;
  std::erase_if(weight_copies, [](const auto& entry) { return entry.second.storage.expired(); });  // freed weights
  return (weight_copies[key] = copy_of(w)).copy;
}

Bf16MatmulGuard::Bf16MatmulGuard(bool enabled) : previous_(bf16_matmul) { bf16_matmul = enabled; }

Bf16MatmulGuard::~Bf16MatmulGuard() {
  bf16_matmul = previous_;
  remembered = {};
  weight_copies.clear();
}

}  // namespace t6
