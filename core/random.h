// A seeded random number generator that gives the same numbers on every machine: xoshiro256**
// seeded through splitmix64, with floats built from the integer bits (no std:: distributions, whose
// output differs between standard libraries).
#pragma once
#include <array>
#include <cstdint>

#include "core/tensor.h"

namespace t6 {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed);
  uint64_t next_u64();
  double uniform();                 // [0, 1), 53 random bits
  double normal();                  // mean 0, std 1 (Box–Muller)
  uint64_t below(uint64_t bound);   // uniform integer in [0, bound), unbiased

  // The full state, so a training run can be resumed bit-identically.
  std::array<uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

 private:
  std::array<uint64_t, 4> s_{};
};

// Fill a new CPU tensor, row-major, one draw per element; then move it to `device`.
Tensor uniform(const Shape& shape, double low, double high, Generator& gen, DType dtype = DType::F32,
               Device device = Device::CPU);
Tensor normal(const Shape& shape, double mean, double stddev, Generator& gen, DType dtype = DType::F32,
              Device device = Device::CPU);

}  // namespace t6
