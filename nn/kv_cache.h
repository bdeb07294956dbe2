// The key/value cache of generation, and what it costs.
//
// Per layer and cached token the factorized variants ("tpa", "tpa_kvonly") store the spec's factors
// A_k [H,R], B_k [R,dh] (already rotated), A_v [H,R], B_v [R,dh]: 2R(H + dh) numbers. The baselines
// ("mha", "gqa", "mqa") store their rotated key heads and value heads: 2·kv_heads·dh numbers. Every
// buffer is allocated once, for `batch` rows of `capacity` (M) tokens, in one dtype on the model's
// device: generation's is decode_cache_dtype (nn/fused_decode.h), bfloat16 for the factorized variants
// where the backend multiplies bfloat16 (the prefill's float32 factors are rounded as they are written),
// else the model's dtype. Factors are token-major, (B,M,…), since FlashTPA reads all of a token's factors together;
// heads are head-major, (B,kv_heads,M,dh), so each head's cached keys are one matrix for BLAS.
//
// Rows are independent and may hold different numbers of tokens (prompts of different lengths): the
// cache keeps each row's length, which is also the position of the row's next token.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/model_config.h"

namespace t6 {

struct LayerKVCache {
  Tensor a_k, b_k, a_v, b_v;  // factorized variants: (B,M,H,R), (B,M,R,dh), (B,M,H,R), (B,M,R,dh)
  Tensor k, v;                // mha/gqa/mqa: (B,kv_heads,M,dh)

  std::vector<Tensor> buffers() const;  // the defined ones
};

// Copies values into buffer at time slots [slots[b], slots[b] + T) of each row b: values (B,T,…) into
// buffer (B,M,…) along time_axis 1, or values (B,Hkv,T,dh) into buffer (B,Hkv,M,dh) along time_axis 2.
void write_cache(const Tensor& buffer, const Tensor& values, const std::vector<int64_t>& slots, int time_axis = 1);

// The decode-step form: one new token per row, values (B,1,…) into buffer (B,M,…) at the slots given
// as an int32 tensor on the buffer's device (DecodeSlots::positions), read there by the kernel, so the
// write needs no per-row work on the host and a captured step (a CUDA graph) follows each replay's slots.
void write_cache_at(const Tensor& buffer, const Tensor& values, const Tensor& device_slots);
// How many tokens each row attends to when its new token sits in slot slots[b]: itself and every
// earlier slot, slots[b] + 1.
std::vector<int64_t> lengths_through(const std::vector<int64_t>& slots);
// Throws unless there is one length per row of `rows`, each in [1, capacity]: the tokens a decode
// attention (`op`) may read of each row.
void check_decode_lengths(const std::vector<int64_t>& lengths, int64_t rows, int64_t capacity, const char* op);

// Where one decode step's new tokens go, worked out once per step (KVCache::decode_slots) and shared by
// every layer, so that a step uploads them to the device once, not once per layer.
struct DecodeSlots {
  std::vector<int64_t> slots;    // row b's new token goes to slot slots[b], which is also its position
  std::vector<int64_t> lengths;  // lengths_through(slots), each in [1, capacity]
  Tensor positions;              // int32 (B,1) on the cache's device: `slots`, as RoPE reads them
  Tensor device_lengths;         // int32 (B) on the cache's device: `lengths`, for the decode kernel
};

class KVCache {
 public:
  // Allocates every layer's buffers (zero-filled); every row starts empty.
  KVCache(const ModelConfig& config, int64_t batch, int64_t capacity, Device device = Device::CPU,
          DType dtype = DType::F32);

  int64_t batch() const { return batch_; }
  int64_t capacity() const { return capacity_; }
  LayerKVCache& layer(size_t i) { return layers_.at(i); }
  const LayerKVCache& layer(size_t i) const { return layers_.at(i); }
  size_t layers() const { return layers_.size(); }

  // Tokens stored per row.
  const std::vector<int64_t>& lengths() const { return lengths_; }
  void set_lengths(const std::vector<int64_t>& lengths);
  // The slot each row's next token goes to: its length, or, for a row already at capacity (one whose
  // generation has ended while others go on), its last slot again, so batched steps never overflow.
  std::vector<int64_t> next_slots() const;
  // The next decode step's slots (next_slots()) and lengths, with both uploaded in one copy.
  DecodeSlots decode_slots() const;
  // The same, written into `table`, an int32 (2,B) tensor on the cache's device that the returned
  // DecodeSlots views: a captured decode step (nn/decode_graph.h) keeps reading the same buffer.
  DecodeSlots decode_slots(const Tensor& table) const;
  void advance();  // one more token in every row that has room

  int64_t bytes_allocated() const;  // all layers, rows and slots
  int64_t bytes_per_token() const;  // one token of one row, all layers

 private:
  int64_t batch_, capacity_;
  Device device_;
  std::vector<LayerKVCache> layers_;
  std::vector<int64_t> lengths_;
};

// KV-cache numbers per token per layer of the model next to multi-head, grouped-query and multi-query
// attention of the same width: d split into heads of the model's head_dim (the paper's MHA has
// H = d/64); GQA with the model's own n_kv_head when it is a GQA model, else a quarter of the MHA heads.
struct KVCacheSize {
  std::string variant;  // "this model (tpa)", "MHA, 12 heads", …
  int64_t numbers_per_layer;  // cached numbers per token per layer
};
std::vector<KVCacheSize> kv_cache_comparison(const ModelConfig& config);

}  // namespace t6
