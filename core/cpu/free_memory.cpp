// How much host memory a command may still count on: the kernel's own estimate (MemAvailable: free
// pages plus caches it can drop), plus what the caching allocator holds unused.
#include <unistd.h>

#include <fstream>
#include <string>

#include "core/cpu/cpu_backend.h"

namespace t6::cpu {

namespace {
size_t available_host_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  size_t kilobytes = 0;
  while (meminfo >> key >> kilobytes) {
    if (key == "MemAvailable:") return kilobytes * 1024;
    meminfo.ignore(64, '\n');
  }
  return static_cast<size_t>(sysconf(_SC_AVPHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}
}  // namespace

size_t CpuBackend::free_memory() const {
  const MemoryStats stats = memory_stats();
  return available_host_bytes() + cached_unused(stats);
}

}  // namespace t6::cpu
