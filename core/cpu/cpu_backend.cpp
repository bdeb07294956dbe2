// The CPU backend's setup and memory: 64-byte-aligned host allocations with a count of the bytes in
// use, copies that are plain memcpy, and its description. The kernels are in the kernels_*.cpp files
// and gemm.cpp.
#include "core/cpu/cpu_backend.h"

#include <cblas.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/cpu/threads.h"

namespace t6 {

namespace cpu {

namespace {

std::string openblas_short_name() {
  std::istringstream config(openblas_get_config());  // "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH …"
  std::string name, version;
  config >> name >> version;
  return cat(name, " ", version, " ", openblas_get_corename());
}

}  // namespace

CpuBackend::CpuBackend() { cpu_threads(); }  // applies the thread defaults before the first kernel runs

std::string CpuBackend::describe() const {
  const int threads = cpu_threads();
  return cat("cpu (", openblas_short_name(), ", ", threads, threads == 1 ? " thread)" : " threads)");
}

void* CpuBackend::allocate(size_t bytes) {
  // 64-byte alignment for whole-cache-line vector loads; zero bytes still get a unique pointer.
  const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  T6_CHECK(p != nullptr, "cpu: out of memory allocating ", bytes, " bytes (", current_ / (1 << 20),
           " MiB already in use)");
  const size_t now = current_ += bytes;
  size_t peak = peak_;
  while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
  }
  return p;
}

void CpuBackend::deallocate(void* p, size_t bytes) {
  std::free(p);
  current_ -= bytes;
}

void CpuBackend::copy_to_host(void* host_dst, const void* device_src, size_t bytes) {
  if (bytes > 0) std::memcpy(host_dst, device_src, bytes);
}

void CpuBackend::copy_from_host(void* device_dst, const void* host_src, size_t bytes) {
  if (bytes > 0) std::memcpy(device_dst, host_src, bytes);
}

Backend::MemoryStats CpuBackend::memory_stats() const {
  // No caching allocator: everything held is in use.
  return {current_.load(), peak_.load(), current_.load()};
}

}  // namespace cpu

// Never destroyed: tensors released during static destruction still free through it.
Backend& cpu_backend() {
  static cpu::CpuBackend* instance = new cpu::CpuBackend;
  return *instance;
}

}  // namespace t6
