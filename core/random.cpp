#include "core/random.h"

#include <cmath>
#include <vector>

namespace t6 {

namespace {
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

void Generator::reseed(uint64_t seed) {
  // splitmix64 spreads any seed (0 included) into a well-mixed, never all-zero state
  for (auto& word : s_) {
    uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    word = z ^ (z >> 31);
  }
}

uint64_t Generator::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Generator::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Generator::normal() {
  // Box–Muller; 1 - uniform() lies in (0, 1], so the log is finite.
  const double u1 = 1.0 - uniform();
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

uint64_t Generator::below(uint64_t bound) {
  T6_CHECK(bound > 0, "Generator::below: bound must be positive");
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;  // reject the short last bucket
  uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return x % bound;
}

namespace {
template <class Draw>
Tensor fill_with(const Shape& shape, DType dtype, Device device, Draw draw) {
  T6_CHECK(is_floating(dtype) && dtype != DType::BF16, "random fill: dtype ", dtype_name(dtype),
           " is not supported; use float32 or float64");
  std::vector<double> values(static_cast<size_t>(numel_of(shape)));
  for (auto& v : values) v = draw();
  return from_vector(values, shape, dtype, device);
}
}  // namespace

Tensor uniform(const Shape& shape, double low, double high, Generator& gen, DType dtype, Device device) {
  return fill_with(shape, dtype, device, [&] { return low + (high - low) * gen.uniform(); });
}

Tensor normal(const Shape& shape, double mean, double stddev, Generator& gen, DType dtype, Device device) {
  return fill_with(shape, dtype, device, [&] { return mean + stddev * gen.normal(); });
}

}  // namespace t6
