// Element types. Compute is float32 or float64 (gradient checks); int32 holds token ids;
// bfloat16 is a storage type used by the CUDA backend for mixed-precision matmul inputs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace t6 {

enum class DType : uint8_t { F32, F64, I32, BF16 };

inline size_t dtype_size(DType d) {
  switch (d) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::BF16: return 2;
  }
  return 0;
}

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I32: return "int32";
    case DType::BF16: return "bfloat16";
  }
  return "?";
}

inline bool is_floating(DType d) { return d != DType::I32; }

// bfloat16 = the top 16 bits of a float32; conversion rounds to nearest even.
inline uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // NaN stays NaN
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

inline float bf16_to_float(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace t6
