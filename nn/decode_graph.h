// Decode steps replayed as a CUDA graph. A decode step of the paper's small T6 queues ~400 small
// kernels; launched one by one from the host they take longer than the GPU needs to run them, so the
// step is captured once (Backend::begin_graph_capture) and each later step is one graph launch.
//
// A graph replays fixed pointers, so everything a step reads lives in buffers this object owns and
// rewrites before each replay: the new tokens and the slot table (positions and lengths; nn/kv_cache.h).
// The cache buffers themselves are fixed, and the step's cache writes and FlashTPA lengths come from
// the slot table on the device, so one graph serves every step of a generation.
//
// The factorized attentions (tpa, tpa_kvonly) run the fused decode step (nn/fused_decode.h) over a copy
// of the weights this object makes when generation starts, on every device; captured as a graph where
// the backend supports_graphs(). The others run T6Model::decode_step's modules, step by step.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "nn/fused_decode.h"
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
  // The operations one step launches: those of the captured graph; 0 before the capture or without one.
  int64_t operations_per_step() const;

 private:
  const T6Model& model_;
  KVCache& cache_;
  std::optional<DecodeWeights> fused_;  // the fused step's weights: factorized attentions only
  bool use_graph_;     // a device with graphs and a factorized attention
  Tensor tokens_;      // int32 (B) on the device
  Tensor slot_table_;  // int32 (2,B) on the device: positions, lengths
  Tensor logits_;      // (B,V): the captured step's output
  int64_t graph_ = 0;  // 0 until captured
  int64_t steps_ = 0;
};

}  // namespace t6
