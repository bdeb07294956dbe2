// A caching allocator for host memory, the twin of cuda/caching_allocator.h. A training step allocates
// its activations and gradients afresh and frees them at its end; straight through the C library, the
// large blocks go back to the kernel when freed (glibc unmaps or trims them), so the next step faults
// every page in again: some 30,000 minor faults and a fifth of the CPU time in the kernel per step of
// configs/bench_cpu.json (docs/PERF.md, "CPU memory and the caching allocator"). Here a freed block
// waits on the free list of its size class for the next request of that class, so in steady state a
// step makes no allocation call and touches no page it has not touched before.
//
// Sizes are rounded up to classes (multiples of 64 bytes up to 256, then four classes per power of two,
// so at most 25% is wasted). Blocks are never split or merged. Every block is 64-byte aligned (whole
// cache lines for vector loads). Advising large blocks as transparent huge pages measured no faster
// (docs/PERF.md), so they stay in ordinary pages.
//
// Uncached (T6_CPU_CACHE=0, and always in the sanitizer build, where AddressSanitizer must see every
// use after free), every block goes straight back to the C library when freed, as before the cache.
#pragma once
#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/backend.h"

namespace t6::cpu {

class CachingAllocator {
 public:
  explicit CachingAllocator(bool caching) : caching_(caching) {}
  ~CachingAllocator();  // frees the cached blocks; blocks still handed out are left alone
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A block of at least `bytes`, never nullptr (zero bytes still get a block of their own). When the C
  // library is out of memory, frees every cached block and tries once more, then throws t6::Error.
  void* allocate(size_t bytes);
  // `bytes` is what allocate was asked for: it names the block's size class.
  void deallocate(void* ptr, size_t bytes);
  void release_cached();  // gives every cached (free) block back to the C library

  // current and peak count the bytes asked for; reserved, the whole blocks held, in use or cached.
  Backend::MemoryStats stats() const;
  bool caching() const { return caching_; }

  static size_t size_class(size_t bytes);

 private:
  size_t block_size(size_t bytes) const;  // the size class, or (uncached) the bytes rounded to 64
  void release_cached_locked();

  const bool caching_;
  mutable std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_blocks_;  // size class → cached blocks
  size_t current_bytes_ = 0, peak_bytes_ = 0, reserved_bytes_ = 0;
};

// Whether the CPU backend caches: T6_CPU_CACHE unset or "1" → yes, "0" → no (for comparisons), anything
// else throws. Always no in the sanitizer build.
bool cpu_cache_from_environment();

}  // namespace t6::cpu
