// Host → device copies that return without waiting for the GPU.
//
// A cudaMemcpyAsync from ordinary (pageable) host memory may still be reading the caller's buffer after
// it returns, so a plain upload has to wait for the stream, and every batch of token ids or decode step
// would stall the host until the GPU had drained its queue. Instead, the bytes are first copied on the
// host into pinned (page-locked) staging memory, and the DMA copy from there is queued on the stream:
// the caller's buffer is free as soon as copy() returns.
//
// The staging memory is a ring of kChunks chunks of kChunkBytes. Consecutive copies fill the current
// chunk one after another, and an event recorded after each copy marks the chunk's last use. A chunk is
// refilled only once its event has completed, so the host waits only when the GPU is a whole ring of
// copies behind. A copy larger than a chunk goes through the ring piece by piece (no fallback to a
// synchronous copy): large uploads such as loading a checkpoint then pipeline, the host filling one
// chunk while the GPU reads another.
//
// Not thread-safe: used by the thread that drives the backend, like the stream itself.
#pragma once
#include <cuda_runtime_api.h>

#include <array>
#include <cstddef>

namespace t6 {

class PinnedStaging {
 public:
  explicit PinnedStaging(cudaStream_t stream);
  ~PinnedStaging();
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;

  // Queues a copy of `bytes` bytes from host_src to device_dst on the stream; host_src may be freed or
  // overwritten as soon as this returns.
  void copy(void* device_dst, const void* host_src, size_t bytes);

  // 8 × 1 MiB: uploads of a training step (ids, targets) or a decode step (tokens, slots) are far
  // smaller, so many steps fit in the ring before a chunk is reused.
  static constexpr size_t kChunks = 8;
  static constexpr size_t kChunkBytes = size_t{1} << 20;

 private:
  struct Chunk {
    void* memory = nullptr;          // kChunkBytes of pinned host memory
    cudaEvent_t last_use = nullptr;  // recorded after the latest copy that read from this chunk
  };
  void next_chunk();  // moves to the next chunk of the ring, waiting until its last copy is done
  void release();     // frees whatever the constructor got

  cudaStream_t stream_;
  std::array<Chunk, kChunks> chunks_{};
  size_t current_ = 0;  // the chunk being filled
  size_t used_ = 0;     // bytes of it handed out since it was last refilled
};

}  // namespace t6
