// Benchmark inputs: values in [-1, 1) from a hash of the index. Filling a cache of hundreds of MiB
// through Generator would take longer than the benchmark, and the values do not matter for speed.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace t6 {

inline Tensor pseudo_random(const Shape& shape, uint64_t seed) {
  Tensor t = empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    uint64_t z = (static_cast<uint64_t>(i) + seed) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 31)) * 0xbf58476d1ce4e5b9ull;
    p[i] = static_cast<float>(static_cast<double>(z >> 40) / static_cast<double>(1ull << 23) - 1.0);
  }
  return t;
}

}  // namespace t6
