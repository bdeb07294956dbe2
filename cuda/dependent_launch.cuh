// Programmatic dependent launch for the decode step's kernels: each launches while the kernel before it
// still runs, so a step of ~70 dependent kernels does not pay a launch's latency (and, for the GEMV-shaped
// kernels, its first weight loads) between each pair. Works inside a captured CUDA graph.
//
// The rule that keeps it correct: a kernel launched this way calls wait_for_previous_kernel() in every
// block before it reads anything an earlier kernel wrote or writes anything an earlier kernel reads;
// before that it may only read its weights. The wait returns once the previous kernel has finished and
// its writes are visible; since every such kernel waits, that previous kernel's predecessors have
// finished too. Each kernel lets the next one launch as soon as it starts (allow_next_kernel): the next
// one's blocks then only wait, and prefetch.
#pragma once
#include <cuda_runtime.h>

#include <utility>

#include "cuda/cuda_check.h"

namespace t6 {

namespace kernels {

__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void allow_next_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Asks L2 for the cache lines of [p, p + bytes), the warp's lanes taking every 32nd line.
__device__ __forceinline__ void prefetch_l2(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t at = int64_t(threadIdx.x % 32) * 128; at < bytes; at += 32 * 128)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(c + at));
}

}  // namespace kernels

// kernel<<<grid, block, shared, stream>>>(args...), allowed to start before the previous kernel on the
// stream has finished (the kernel waits for it itself: see above); with cluster > 0, the grid's blocks in
// thread block clusters of `cluster` along x (sm_90).
template <class... Params, class... Args>
void launch_dependent_clusters(void (*kernel)(Params...), dim3 grid, dim3 block, unsigned cluster, size_t shared,
                               cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attribute[2];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  attribute[1].id = cudaLaunchAttributeClusterDimension;
  attribute[1].val.clusterDim.x = cluster, attribute[1].val.clusterDim.y = 1, attribute[1].val.clusterDim.z = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  config.attrs = attribute;
  config.numAttrs = cluster > 0 ? 2 : 1;
  T6_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

template <class... Params, class... Args>
void launch_dependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t stream,
                      Args&&... args) {
  launch_dependent_clusters(kernel, grid, block, 0, shared, stream, std::forward<Args>(args)...);
}

}  // namespace t6
