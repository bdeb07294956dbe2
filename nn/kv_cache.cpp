#include "nn/kv_cache.h"

#include <algorithm>

#include "autograd/ops.h"
#include "core/backend.h"

namespace t6 {

std::vector<Tensor> LayerKVCache::buffers() const {
  std::vector<Tensor> out;
  for (const Tensor* t : {&a_k, &b_k, &a_v, &b_v, &k, &v})
    if (t->defined()) out.push_back(*t);
  return out;
}

void write_cache(const Tensor& buffer, const Tensor& values, const std::vector<int64_t>& slots, int time_axis) {
  const int64_t B = buffer.size(0), T = values.size(time_axis), M = buffer.size(time_axis);
  T6_CHECK(values.size(0) == B && static_cast<int64_t>(slots.size()) == B, "write_cache: values ",
           shape_str(values.shape()), " and ", slots.size(), " slots for a cache of ", B, " rows");
  for (int64_t b = 0; b < B; ++b) {
    T6_CHECK(slots[b] >= 0 && slots[b] + T <= M, "write_cache: tokens [", slots[b], ", ", slots[b] + T, ") of row ", b,
             " do not fit a cache of ", M, " slots");
    Tensor window = slice(slice(buffer, 0, b, b + 1), time_axis, slots[b], slots[b] + T);  // a view
    window.copy_(slice(values, 0, b, b + 1));
  }
}

void write_cache_at(const Tensor& buffer, const Tensor& values, const Tensor& device_slots) {
  const int64_t B = buffer.size(0);
  T6_CHECK(values.size(0) == B && values.size(1) == 1 && device_slots.numel() == B &&
               values.numel() * buffer.size(1) == buffer.numel() && values.device() == buffer.device(),
           "write_cache_at: values ", shape_str(values.shape()), " (one token per row) and ", device_slots.numel(),
           " slots do not fit a cache buffer ", shape_str(buffer.shape()));
  T6_CHECK(values.dtype() == buffer.dtype(), "write_cache_at: values of ", dtype_name(values.dtype()),
           " into a cache of ", dtype_name(buffer.dtype()), "; a bfloat16 cache is written by the fused decode step ",
           "(nn/fused_decode.h)");
  Tensor target = buffer;  // the buffer itself is written; the handle is not
  backend_of(buffer).scatter_rows(values.contiguous_data(), device_slots.contiguous_data(), target);
}

std::vector<int64_t> lengths_through(const std::vector<int64_t>& slots) {
  std::vector<int64_t> lengths(slots);
  for (int64_t& n : lengths) ++n;
  return lengths;
}

void check_decode_lengths(const std::vector<int64_t>& lengths, int64_t rows, int64_t capacity, const char* op) {
  T6_CHECK(static_cast<int64_t>(lengths.size()) == rows, op, ": ", lengths.size(), " lengths for ", rows, " rows");
  for (int64_t n : lengths)
    T6_CHECK(n >= 1 && n <= capacity, op, ": a row attends to ", n, " tokens; needs 1 to ", capacity);
}

KVCache::KVCache(const ModelConfig& c, int64_t batch, int64_t capacity, Device device, DType dtype)
    : batch_(batch), capacity_(capacity), device_(device), lengths_(static_cast<size_t>(batch), 0) {
  T6_CHECK(batch >= 1 && capacity >= 1, "KVCache: needs at least one row and one slot, got ", batch, " rows of ",
           capacity);
  const int64_t B = batch, M = capacity, H = c.n_head, R = c.rank, dh = c.head_dim;
  for (int64_t i = 0; i < c.n_layer; ++i) {
    LayerKVCache layer;
    if (c.factorized_kv()) {
      layer.a_k = zeros({B, M, H, R}, dtype, device);
      layer.b_k = zeros({B, M, R, dh}, dtype, device);
      layer.a_v = zeros({B, M, H, R}, dtype, device);
      layer.b_v = zeros({B, M, R, dh}, dtype, device);
    } else {
      layer.k = zeros({B, c.kv_heads(), M, dh}, dtype, device);
      layer.v = zeros({B, c.kv_heads(), M, dh}, dtype, device);
    }
    layers_.push_back(layer);
  }
}

void KVCache::set_lengths(const std::vector<int64_t>& lengths) {
  T6_CHECK(static_cast<int64_t>(lengths.size()) == batch_, "KVCache: ", lengths.size(), " lengths for ", batch_,
           " rows");
  for (int64_t n : lengths)
    T6_CHECK(n >= 0 && n <= capacity_, "KVCache: a row of ", n, " tokens does not fit ", capacity_, " slots");
  lengths_ = lengths;
}

std::vector<int64_t> KVCache::next_slots() const {
  std::vector<int64_t> slots(lengths_);
  for (int64_t& s : slots) s = std::min(s, capacity_ - 1);
  return slots;
}

DecodeSlots KVCache::decode_slots() const { return decode_slots(empty({2, batch_}, DType::I32, device_)); }

DecodeSlots KVCache::decode_slots(const Tensor& table) const {
  T6_CHECK(table.dtype() == DType::I32 && table.shape() == Shape({2, batch_}) && table.device() == device_ &&
               table.is_contiguous(),
           "KVCache::decode_slots: the table must be a contiguous int32 (2, ", batch_, ") tensor on ",
           device_name(device_), ", got ", dtype_name(table.dtype()), " ", shape_str(table.shape()));
  DecodeSlots step;
  step.slots = next_slots();
  // Every slot lies in [0, capacity) (set_lengths checked the lengths), so every length in [1, capacity].
  step.lengths = lengths_through(step.slots);
  std::vector<int32_t> both;  // row 0: the positions, row 1: the lengths
  for (const std::vector<int64_t>* row : {&step.slots, &step.lengths})
    both.insert(both.end(), row->begin(), row->end());
  backend(device_).copy_from_host(table.raw_data(), both.data(), both.size() * sizeof(int32_t));
  step.positions = slice(table, 0, 0, 1).view({batch_, 1});
  step.device_lengths = slice(table, 0, 1, 2).view({batch_});
  return step;
}

void KVCache::advance() {
  for (int64_t& n : lengths_) n = std::min(n + 1, capacity_);
}

int64_t KVCache::bytes_allocated() const {
  int64_t bytes = 0;
  for (const LayerKVCache& layer : layers_)
    for (const Tensor& t : layer.buffers()) bytes += t.numel() * static_cast<int64_t>(dtype_size(t.dtype()));
  return bytes;
}

int64_t KVCache::bytes_per_token() const { return bytes_allocated() / (batch_ * capacity_); }

std::vector<KVCacheSize> kv_cache_comparison(const ModelConfig& c) {
  const int64_t mha_heads = std::max<int64_t>(1, c.n_embd / c.head_dim);
  const int64_t gqa_heads = c.attention == AttentionKind::GQA ? c.n_kv_head : std::max<int64_t>(1, mha_heads / 4);
  return {{"this model (" + std::string(c.attention_name()) + ")", c.kv_cache_numbers_per_token_per_layer()},
          {"MHA, " + std::to_string(mha_heads) + " heads", 2 * mha_heads * c.head_dim},
          {"GQA, " + std::to_string(gqa_heads) + " kv heads", 2 * gqa_heads * c.head_dim},
          {"MQA, 1 kv head", 2 * c.head_dim}};
}

}  // namespace t6
