// Decode steps replayed as a CUDA graph. A decode step of the paper's small T6 queues ~400 small
// kernels; launched one by one from the host they take longer than the GPU needs to run them, so the
// step is captured once (Backend::begin_graph_capture) and each later step is one graph launch.
//
// A graph replays fixed pointers, so everything a step reads lives in buffers this object owns and
// rewrites before each replay: the new tokens and the slot table (positions and lengths; nn/kv_cache.h).
// The cache buffers themselves are fixed, and the step's cache writes and FlashTPA lengths come from
// the slot table on the device, so one graph serves every step of a generation. Only the factorized
// attentions (tpa, tpa_kvonly) decode that way; for the others, and on the CPU, step() runs
// T6Model::decode_step directly.
#pragma once
#include <cstdint>
#include <vector>

#include "nn/kv_cache.h"
#include "nn/t6_model.h"

namespace t6 {

class DecodeGraph {
 public:
  DecodeGraph(const T6Model& model, KVCache& cache);
  ~DecodeGraph();
  DecodeGraph(const DecodeGraph&) = delete;
  DecodeGraph& operator=(const DecodeGraph&) = delete;

  // T6Model::decode_step for these tokens (one per row, already validated): the logits (B,V) on the
  // model's device, and the cache advanced. The tensor is overwritten by the next step (a replayed
  // step writes the captured step's output buffer each time).
  Tensor step(const std::vector<int32_t>& tokens);

 private:
  const T6Model& model_;
  KVCache& cache_;
  bool use_graph_;     // a device with graphs and a factorized attention
  Tensor tokens_;      // int32 (B) on the device
  Tensor slot_table_;  // int32 (2,B) on the device: positions, lengths
  Tensor logits_;      // (B,V): the captured step's output
  int64_t graph_ = 0;  // 0 until captured
  int64_t steps_ = 0;
};

}  // namespace t6
