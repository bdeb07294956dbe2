// The CUDA backend's setup and memory: the stream, the cuBLAS handle, the caching allocator, the
// host ↔ device copies and the waits for the GPU. The kernels are in the kernels_*.cu files and gemm.cu.
#include "cuda/cuda_backend.h"

#include <cstdio>
#include <cstring>

#include "cuda/cuda_check.h"

namespace t6 {

namespace {

// Every CUDA call of the process runs on the main thread, after this cudaSetDevice.
cudaStream_t make_stream(int ordinal) {
  T6_CUDA_CHECK(cudaSetDevice(ordinal));
  cudaStream_t stream = nullptr;
  // Non-blocking: the legacy default stream, which other libraries may use, never serializes with ours.
  T6_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return stream;
}

// "cuda:0 (NVIDIA H100 80GB HBM3, 132 SMs, 79.6 GiB)"
std::string describe_device(int ordinal) {
  cudaDeviceProp prop{};
  T6_CUDA_CHECK(cudaGetDeviceProperties(&prop, ordinal));
  char memory[32];
  std::snprintf(memory, sizeof memory, "%.1f GiB", static_cast<double>(prop.totalGlobalMem) / (1 << 30));
  return cat("cuda:", ordinal, " (", prop.name, ", ", prop.multiProcessorCount, " SMs, ", memory, ")");
}

}  // namespace

CudaBackend::CudaBackend(int ordinal)
    : ordinal_(ordinal), stream_(make_stream(ordinal)), allocator_(stream_), description_(describe_device(ordinal)) {
  T6_CUBLAS_CHECK(cublasCreate(&cublas_));
  T6_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
}

CudaBackend::~CudaBackend() {
  // Errors cannot be reported from a destructor; at program exit the runtime may be gone already.
  cudaStreamSynchronize(stream_);
  if (download_ != nullptr) cudaFreeHost(download_);
  for (auto& [id, g] : graphs_) {
    cudaGraphExecDestroy(g.exec);
    cudaGraphDestroy(g.graph);
  }
  cublasDestroy(cublas_);
  cudaStreamDestroy(stream_);
}

void* CudaBackend::allocate(size_t bytes) { return allocator_.allocate(bytes); }

void CudaBackend::deallocate(void* ptr, size_t) { allocator_.deallocate(ptr); }

void CudaBackend::copy_to_host(void* host_dst, const void* device_src, size_t bytes) {
  if (bytes == 0) return;
  forbid_while_capturing("copy_to_host");
  if (bytes > kMaxPinnedDownload) {
    T6_CUDA_CHECK(cudaMemcpyAsync(host_dst, device_src, bytes, cudaMemcpyDeviceToHost, stream_));
    wait_for_stream();
    return;
  }
  if (bytes > download_bytes_) {
    wait_for_stream();  // an earlier download may still be in flight into the old buffer
    if (download_ != nullptr) T6_CUDA_CHECK(cudaFreeHost(download_));
    download_ = nullptr, download_bytes_ = 0;
    T6_CUDA_CHECK(cudaMallocHost(&download_, bytes));
    download_bytes_ = bytes;
  }
  T6_CUDA_CHECK(cudaMemcpyAsync(download_, device_src, bytes, cudaMemcpyDeviceToHost, stream_));
  wait_for_stream();
  std::memcpy(host_dst, download_, bytes);
}

void CudaBackend::copy_from_host(void* device_dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return;
  forbid_while_capturing("copy_from_host");
  staging_.copy(device_dst, host_src, bytes);  // no wait: host_src is copied to pinned memory first
}

void CudaBackend::synchronize() { wait_for_stream(); }

void CudaBackend::wait_for_stream() {
  forbid_while_capturing("a wait for the GPU");
  T6_CUDA_CHECK(cudaStreamSynchronize(stream_));
  bad_ids_.throw_if_reported(stream_);
}

Backend::MemoryStats CudaBackend::memory_stats() const { return allocator_.stats(); }

// What the driver has free, plus what the caching allocator holds unused (it hands that out first).
size_t CudaBackend::free_memory() const {
  size_t free_bytes = 0, total_bytes = 0;
  T6_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const MemoryStats stats = allocator_.stats();
  return free_bytes + cached_unused(stats);
}

}  // namespace t6
