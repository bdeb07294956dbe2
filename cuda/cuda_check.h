// Checks for every CUDA runtime and cuBLAS call: a failure throws t6::Error naming the call, the file
// and line that made it, and what CUDA said. Kernel launches are checked right after the launch with
// T6_CUDA_CHECK_LAUNCH, so a bad launch configuration is blamed on the kernel that caused it.
//
// A fault *inside* a running kernel (an illegal address, say) is asynchronous: it surfaces at the next
// call that waits for the GPU, and every later call then fails with the same error. Run with
// CUDA_LAUNCH_BLOCKING=1 to make each launch wait, so the failing kernel is the one reported.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "core/error.h"

#define T6_CUDA_CHECK(call) ::t6::check_cuda((call), #call, __FILE__, __LINE__)
#define T6_CUBLAS_CHECK(call) ::t6::check_cublas((call), #call, __FILE__, __LINE__)
#define T6_CUDA_CHECK_LAUNCH(kernel) \
  ::t6::check_cuda(cudaGetLastError(), "launch of kernel " #kernel, __FILE__, __LINE__)

namespace t6 {

inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  throw Error(cat(file, ":", line, ": CUDA error in ", call, ": ", cudaGetErrorName(status), " (",
                  cudaGetErrorString(status), ")"));
}

inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw Error(cat(file, ":", line, ": cuBLAS error in ", call, ": ", cublasGetStatusName(status), " (",
                  cublasGetStatusString(status), ")"));
}

}  // namespace t6
