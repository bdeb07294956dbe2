#include "core/memory_summary.h"

#include <cstdio>

namespace t6 {

std::string memory_summary(const Backend::MemoryStats& stats) {
  const auto mib = [](size_t bytes) { return static_cast<double>(bytes) / (1 << 20); };
  char text[128];
  std::snprintf(text, sizeof text, "%.1f MiB in tensors (peak %.1f MiB), %.1f MiB held", mib(stats.current_bytes),
                mib(stats.peak_bytes), mib(stats.reserved_bytes));
  return text;
}

}  // namespace t6
