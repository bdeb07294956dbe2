// Where a tensor's storage lives. The CPU backend is always present; the CUDA backend registers
// itself when the program is built with T6_CUDA and a GPU is found at run time.
#pragma once
#include <cstdint>
#include <string>

#include "core/enum_names.h"

namespace t6 {

enum class Device : uint8_t { CPU, CUDA };

inline const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

// Parses "cpu" or "cuda"; throws t6::Error naming the allowed values otherwise.
Device parse_device(const std::string& name);
const EnumNames<Device>& device_names();  // "cpu", "cuda": for config keys

}  // namespace t6
