// The CPU backend's setup and memory: host blocks from the caching allocator (caching_allocator.h),
// copies that are plain memcpy, and its description. The kernels are in the kernels_*.cpp files
// and gemm.cpp.
#include "core/cpu/cpu_backend.h"

#include <cblas.h>

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
  const auto timing = timer_.time("allocate");
  return allocator_.allocate(bytes);
}

void CpuBackend::deallocate(void* p, size_t bytes) {
  const auto timing = timer_.time("deallocate");
  allocator_.deallocate(p, bytes);
}

void CpuBackend::copy_to_host(void* host_dst, const void* device_src, size_t bytes) {
  const auto timing = timer_.time("copy_to_host");
  if (bytes > 0) std::memcpy(host_dst, device_src, bytes);
}

void CpuBackend::copy_from_host(void* device_dst, const void* host_src, size_t bytes) {
  const auto timing = timer_.time("copy_from_host");
  if (bytes > 0) std::memcpy(device_dst, host_src, bytes);
}

}  // namespace cpu

// Never destroyed: tensors released during static destruction still free through it.
Backend& cpu_backend() {
  static cpu::CpuBackend* instance = new cpu::CpuBackend;
  return *instance;
}

}  // namespace t6
