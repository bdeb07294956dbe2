// A caching allocator for device memory. cudaMalloc and cudaFree are slow (cudaFree waits for the whole
// GPU), so a freed block is kept on a free list for its size class and handed to the next request of
// that class: in a training loop, where every step allocates the same shapes, steady state makes no
// CUDA allocation calls at all.
//
// Sizes are rounded up to classes (multiples of 512 bytes, then four classes per power of two, so at
// most 25% is wasted). Blocks are never split or merged. Reuse is safe without events because the
// backend runs every kernel and copy on one stream: work queued after a block is freed runs after the
// work that used it.
#pragma once
#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <cuda_runtime_api.h>

#include "core/backend.h"

namespace t6 {

class CachingAllocator {
 public:
  explicit CachingAllocator(cudaStream_t stream) : stream_(stream) {}
  ~CachingAllocator();  // returns the cached blocks to CUDA; blocks still handed out are left alone
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A block of at least `bytes` (nullptr for 0). When CUDA is out of memory, frees every cached block
  // and tries once more, then throws t6::Error with the size asked for and the memory in use.
  void* allocate(size_t bytes);
  void deallocate(void* ptr);  // back onto its free list; nullptr is ignored
  void release_cached();       // cudaFree every cached (free) block

  // Graph capture: while pool `id` is open, every block handed out belongs to it, and when freed goes
  // back to that pool's own free lists instead of the shared cache, where the next capture-time request
  // of its size finds it. So a graph's buffers stay its own: its replays rewrite them, and no tensor
  // allocated after the capture may share one. release_pool(id) gives the pool's free blocks back to
  // the shared cache (blocks of the pool still handed out go there when freed).
  void open_pool(int64_t id);
  void close_pool();
  void release_pool(int64_t id);
  Backend::MemoryStats stats() const;

  static size_t size_class(size_t bytes);

 private:
  void release_cached_locked();

  cudaStream_t stream_;  // synchronized before cached blocks go back to CUDA
  mutable std::mutex mutex_;
  using FreeLists = std::unordered_map<size_t, std::vector<void*>>;  // size class → cached blocks
  struct Live {
    size_t size;   // its size class
    int64_t pool;  // the graph pool it belongs to, 0 for none
  };
  void* take_cached(FreeLists& lists, size_t size);  // nullptr when none of that size is cached

  FreeLists free_blocks_;
  std::unordered_map<int64_t, FreeLists> pool_blocks_;  // graph pool → its free blocks
  int64_t open_pool_ = 0;
  std::unordered_map<void*, Live> live_blocks_;  // handed out
  size_t current_bytes_ = 0, peak_bytes_ = 0, reserved_bytes_ = 0;
};

// A temporary device buffer (kernel arguments too large to pass by value, a result to copy back),
// returned to the cache at the end of its scope. Dropping it right after queueing the kernels that
// use it is safe: whoever gets the block next runs later on the same stream.
class DeviceBuffer {
 public:
  DeviceBuffer(CachingAllocator& allocator, size_t bytes) : allocator_(allocator), ptr_(allocator.allocate(bytes)) {}
  ~DeviceBuffer() { allocator_.deallocate(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  CachingAllocator& allocator_;
  void* ptr_;
};

}  // namespace t6
