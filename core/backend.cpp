// The backend registry (the CPU backend is built in; the CUDA backend registers a factory and is
// created on first use), and the graph methods of a backend without graphs.
#include "core/backend.h"

#include <atomic>
#include <mutex>

#include "core/cpu/cpu_backend.h"

namespace t6 {

namespace {

struct CudaRegistration {
  std::mutex mutex;
  bool registered = false;
  BackendFactory factory{};
  int available = -1;  // -1 until the factory has been asked (asking may initialise the driver)
  int ordinal = 0;
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
  Backend* created = r.factory.create(r.ordinal);
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

void set_device_ordinal(Device device, int ordinal) {
  if (device == Device::CPU) return;  // one CPU backend per process, over all its cores
  CudaRegistration& r = cuda_registration();
  std::lock_guard lock(r.mutex);
  T6_CHECK(ordinal >= 0, "set_device_ordinal: the ordinal must be ≥ 0, got ", ordinal);
  T6_CHECK(r.instance.load() == nullptr || r.ordinal == ordinal,
           "set_device_ordinal: the CUDA backend is already in use on device ", r.ordinal);
  r.ordinal = ordinal;
}

bool device_available(Device device) {
  if (device == Device::CPU) return true;
  CudaRegistration& r = cuda_registration();
  std::lock_guard lock(r.mutex);
  return cuda_available_locked(r);
}

namespace {

[[noreturn]] void no_graphs(const Backend& b) {
  throw Error(cat("the ", device_name(b.device()), " backend cannot capture graphs; check supports_graphs() first"));
}

}  // namespace

void Backend::begin_graph_capture() { no_graphs(*this); }
int64_t Backend::end_graph_capture() { no_graphs(*this); }
void Backend::replay_graph(int64_t) { no_graphs(*this); }
void Backend::release_graph(int64_t) { no_graphs(*this); }
int64_t Backend::graph_operations(int64_t) const { no_graphs(*this); }

}  // namespace t6
