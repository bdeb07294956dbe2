// Registers the CUDA backend with core/backend.cpp when the program starts. Nothing references this
// file, so t6_cuda is linked whole-archive (CMakeLists.txt) to keep the registration in the program.
#include <cuda_runtime_api.h>

#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"

namespace t6 {

namespace {

// Never throws: without a driver or a GPU this just says no.
bool cuda_available() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  cudaGetLastError();  // a failure here is an answer, not an error for the next CUDA call to report
  return status == cudaSuccess && count > 0;
}

// Built on first use and never destroyed: tensors in static objects may be freed after main returns,
// and they still need their backend then.
Backend* create_cuda_backend(int ordinal) {
  int count = 1;
  T6_CUDA_CHECK(cudaGetDeviceCount(&count));
  static CudaBackend* const instance = new CudaBackend(ordinal % count);
  return instance;
}

struct Registration {
  Registration() { register_backend_factory(Device::CUDA, {cuda_available, create_cuda_backend}); }
};

// Runs before the ordinary static initializers of other files, so code that asks
// device_available(Device::CUDA) while the program starts (doctest's skip decorators, evaluated when
// test cases register) already sees the factory.
__attribute__((init_priority(101))) const Registration registration;

}  // namespace

}  // namespace t6
