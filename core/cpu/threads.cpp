// The CPU thread settings shared by every CPU kernel, and the description of the BLAS under them.
#include "core/cpu/threads.h"

#include <cblas.h>
#include <omp.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>

#include "core/error.h"

namespace t6 {

namespace {

std::atomic<int> configured_threads{0};  // 0 until set_cpu_threads has run

// The first thread count in `value` ("4", or "4,2" for nested OpenMP levels); throws on anything else.
int parse_thread_count(const char* variable, const char* value) {
  errno = 0;
  char* end = nullptr;
  const long n = std::strtol(value, &end, 10);
  const bool valid = end != value && (*end == '\0' || *end == ',') && errno == 0 && n > 0 && n <= kMaxCpuThreads;
  T6_CHECK(valid, variable, "=\"", value, "\" is not a thread count; set it to an integer from 1 to ", kMaxCpuThreads,
           ", such as 2");
  return static_cast<int>(n);
}

int default_thread_count() {
  for (const char* variable : {"T6_NUM_THREADS", "OMP_NUM_THREADS"}) {
    const char* value = std::getenv(variable);
    if (value != nullptr && *value != '\0') return parse_thread_count(variable, value);
  }
  return omp_get_num_procs();
}

}  // namespace

void set_cpu_threads(int threads) {
  T6_CHECK(threads >= 0 && threads <= kMaxCpuThreads, "set_cpu_threads: ", threads,
           " threads; pass a count up to ", kMaxCpuThreads, ", or 0 for T6_NUM_THREADS, else OMP_NUM_THREADS, else every core");
  const int n = threads > 0 ? threads : default_thread_count();
  omp_set_num_threads(n);
  // OpenBLAS stays single-threaded: the CPU gemm runs one BLAS call per thread of its own OpenMP
  // team (core/cpu/gemm.cpp says why), and OpenBLAS's thread pool would fight that team for cores.
  openblas_set_num_threads(1);
  configured_threads = n;
}

int cpu_threads() {
  if (configured_threads == 0) set_cpu_threads(0);
  return configured_threads;
}

std::string blas_description() {
  std::string headers = OPENBLAS_VERSION;  // " OpenBLAS 0.3.21 ": the version compiled against
  headers = headers.substr(headers.find_first_not_of(' '));
  headers.erase(headers.find_last_not_of(' ') + 1);
#ifdef T6_BLAS_LIBRARY
  const std::string library = T6_BLAS_LIBRARY;
#else
  const std::string library = "(library path unknown: built outside CMake)";
#endif
  return cat(openblas_get_config(), " (core ", openblas_get_corename(), ", headers ", headers,
             "; single-threaded, parallelised by t6's OpenMP) from ", library);
}

}  // namespace t6
