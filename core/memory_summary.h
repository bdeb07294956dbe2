// A backend's memory statistics as one phrase, the same wherever it is printed (`t6 info`, `t6 bench
// train`, the trainer's memory line).
#pragma once
#include <string>

#include "core/backend.h"

namespace t6 {

// "41.3 MiB in tensors (peak 120.8 MiB), 131.0 MiB held"
std::string memory_summary(const Backend::MemoryStats& stats);

}  // namespace t6
