// The backend registry (the CPU backend is built in; the CUDA backend registers a factory and is
// created on first use), and the CPU thread settings shared by every CPU kernel.
#include "core/backend.h"

#include <cblas.h>
#include <omp.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <mutex>

#include "core/cpu_backend.h"

namespace t6 {

namespace {

struct CudaRegistration {
  std::mutex mutex;
  bool registered = false;
  BackendFactory factory{};
  int available = -1;  // -1 until the factory has been asked (asking may initialise the driver)
  std::atomic<Backend*> instance{nullptr};
};

// Never destroyed: storage freed during static destruction still needs its backend.
CudaRegistration& cuda_registration() {
  static CudaRegistration* registration = new CudaRegistration;
  return *registration;
}

bool cuda_available_locked(CudaRegistration& r) {
  if (!r.registered) return false;
  if (r.available < 0) r.available = r.factory.available() ? 1 : 0;
  return r.available == 1;
}

}  // namespace

Backend& backend(Device device) {
  if (device == Device::CPU) return cpu_backend();
  CudaRegistration& r = cuda_registration();
  if (Backend* b = r.instance.load(std::memory_order_acquire)) return *b;
  std::lock_guard lock(r.mutex);
  if (Backend* b = r.instance.load(std::memory_order_relaxed)) return *b;
  T6_CHECK(r.registered, "this t6 was built without CUDA (configure with -DT6_CUDA=ON)");
  T6_CHECK(cuda_available_locked(r), "no CUDA GPU found");
  Backend* created = r.factory.create();
  r.instance.store(created, std::memory_order_release);
  return *created;
}

void register_backend_factory(Device device, BackendFactory factory) {
  T6_CHECK(device == Device::CUDA, "register_backend_factory: only CUDA registers a factory; the ",
           device_name(device), " backend is built in");
  T6_CHECK(factory.available != nullptr && factory.create != nullptr,
           "register_backend_factory: the factory needs both available() and create()");
  CudaRegistration& r = cuda_registration();
  std::lock_guard lock(r.mutex);
  T6_CHECK(r.instance.load() == nullptr, "register_backend_factory: the CUDA backend is already in use");
  r.registered = true;
  r.factory = factory;
  r.available = -1;
}

bool device_available(Device device) {
  if (device == Device::CPU) return true;
  CudaRegistration& r = cuda_registration();
  std::lock_guard lock(r.mutex);
  return cuda_available_locked(r);
}

// --- CPU threads ---------------------------------------------------------------------------------

namespace {

std::atomic<int> configured_threads{0};  // 0 until set_cpu_threads has run

// The first thread count in `value` ("4", or "4,2" for nested OpenMP levels); throws on anything else.
int parse_thread_count(const char* variable, const char* value) {
  errno = 0;
  char* end = nullptr;
  const long n = std::strtol(value, &end, 10);
  const bool valid = end != value && (*end == '\0' || *end == ',') && errno == 0 && n > 0 && n <= 4096;
  T6_CHECK(valid, variable, "=\"", value, "\" is not a thread count; set it to a positive integer such as 2");
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
  T6_CHECK(threads >= 0, "set_cpu_threads: ", threads,
           " threads; pass a positive count, or 0 for T6_NUM_THREADS, else OMP_NUM_THREADS, else every core");
  const int n = threads > 0 ? threads : default_thread_count();
  omp_set_num_threads(n);
  // OpenBLAS stays single-threaded: the CPU gemm runs one BLAS call per thread of its own OpenMP
  // team (core/cpu_gemm.cpp says why), and OpenBLAS's thread pool would fight that team for cores.
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

void Backend::begin_graph_capture() {
  throw Error(cat("the ", device_name(device()), " backend cannot capture graphs; check supports_graphs() first"));
}
int64_t Backend::end_graph_capture() {
  throw Error(cat("the ", device_name(device()), " backend cannot capture graphs; check supports_graphs() first"));
}
void Backend::replay_graph(int64_t) {
  throw Error(cat("the ", device_name(device()), " backend cannot capture graphs; check supports_graphs() first"));
}
void Backend::release_graph(int64_t) {
  throw Error(cat("the ", device_name(device()), " backend cannot capture graphs; check supports_graphs() first"));
}

}  // namespace t6
