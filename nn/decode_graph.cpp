#include "nn/decode_graph.h"

#include "core/backend.h"

namespace t6 {

DecodeGraph::DecodeGraph(const T6Model& model, KVCache& cache)
    : model_(model),
      cache_(cache),
      fused_(model.config.factorized_kv() ? std::optional(decode_weights(model, decode_weight_dtype(model)))
                                          : std::nullopt),
      use_graph_(backend(model.device()).supports_graphs() && fused_),
      tokens_(empty({cache.batch()}, DType::I32, model.device())),
      slot_table_(empty({2, cache.batch()}, DType::I32, model.device())) {}

DecodeGraph::~DecodeGraph() {
  if (graph_ != 0) backend(model_.device()).release_graph(graph_);
}

int64_t DecodeGraph::operations_per_step() const {
  return graph_ == 0 ? 0 : backend(model_.device()).graph_operations(graph_);
}

Tensor DecodeGraph::step(const std::vector<int32_t>& tokens) {
  const int64_t B = cache_.batch();
  T6_CHECK(static_cast<int64_t>(tokens.size()) == B, "DecodeGraph::step: ", tokens.size(), " tokens for ", B, " rows");
  const DecodeWeights* fused = fused_ ? &*fused_ : nullptr;
  if (!use_graph_) return model_.decode_step(from_ints(tokens, {B}), cache_, fused);
  Backend& device = backend(model_.device());
  // The inputs go into the fixed buffers; the copies queue ahead of the step that reads them.
  device.copy_from_host(tokens_.raw_data(), tokens.data(), tokens.size() * sizeof(int32_t));
  const DecodeSlots slots = cache_.decode_slots(slot_table_);
  Tensor logits;
  if (steps_++ == 0) {
    // The first step runs eagerly: it brings every buffer the step needs into the allocator's cache and
    // lets cuBLAS set up its kernels, so that the capture itself allocates little.
    logits = model_.decode_on_device(tokens_, slots, cache_, fused);
  } else {
    if (graph_ == 0) {
      device.begin_graph_capture();
      try {
        logits_ = model_.decode_on_device(tokens_, slots, cache_, fused);
      } catch (...) {
        // End the capture before reporting: a stream left capturing would fail every later call.
        try {
          device.release_graph(device.end_graph_capture());
        } catch (...) {
        }
        throw;
      }
      graph_ = device.end_graph_capture();
    }
    device.replay_graph(graph_);  // captured kernels do not run during the capture: this step runs now
    logits = logits_;
  }
  cache_.advance();
  return logits;
}

}  // namespace t6
