// What a command will need in device memory, estimated from its config before anything is allocated,
// so that a request that cannot fit is refused at once — with the estimate, the memory available and
// the keys to change — instead of being killed by the kernel's OOM killer half a minute later.
//
// The estimates count float32 parameters, gradients and AdamW's two moments (16 bytes a parameter),
// the activations a training step keeps for backward (per token and layer about 8d + 6·H·dh + 4F
// floats, plus the [T, T] score matrices where attention is not fused, plus three [T, V] logit
// buffers), and for generation the KV cache. They aim at the right order of magnitude, not the byte.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/device.h"
#include "nn/model_config.h"

namespace t6 {

struct MemoryNeed {
  std::vector<std::pair<std::string, double>> parts;  // ("parameters", bytes), …
  double total() const;
  std::string describe() const;  // "12.3 GiB (parameters 0.5 GiB, …)"
};

// A training step of B sequences of T tokens.
MemoryNeed training_memory(const ModelConfig& model, int64_t batch, int64_t seq_len, Device device);
// Evaluation or generation: the weights, the activations of a no-grad forward of B×T tokens, and a KV
// cache of `cache_tokens` per sequence (0: none).
MemoryNeed inference_memory(const ModelConfig& model, int64_t batch, int64_t seq_len, int64_t cache_tokens,
                            Device device);

// Throws t6::Error when the need exceeds what `device` has free, naming both and `fix`.
void check_memory_fits(const MemoryNeed& need, Device device, const std::string& fix);

}  // namespace t6
