// The caching device allocator (see caching_allocator.h).
#include "cuda/caching_allocator.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "cuda/cuda_check.h"

namespace t6 {

namespace {

constexpr size_t kMinBlock = 512;
// Far beyond any GPU; keeps the size-class arithmetic below from overflowing.
constexpr size_t kMaxRequest = size_t{1} << 60;

std::string gib(size_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  return text;
}

}  // namespace

size_t CachingAllocator::size_class(size_t bytes) {
  if (bytes <= kMinBlock) return kMinBlock;
  // Four classes per power of two: [p, 2p) is cut into steps of p/4. (nvcc compiles C++17: no bit_floor.)
  const size_t power_below = size_t{1} << (63 - __builtin_clzll(bytes));
  const size_t step = std::max(kMinBlock, power_below / 4);
  return (bytes + step - 1) / step * step;
}

CachingAllocator::~CachingAllocator() {
  // At exit the CUDA runtime may already be shutting down; nothing useful can be done with errors.
  for (auto& [size, blocks] : free_blocks_)
    for (void* block : blocks) cudaFree(block);
  for (auto& [id, lists] : pool_blocks_)
    for (auto& [size, blocks] : lists)
      for (void* block : blocks) cudaFree(block);
}

void* CachingAllocator::take_cached(FreeLists& lists, size_t size) {
  auto cached = lists.find(size);
  if (cached == lists.end() || cached->second.empty()) return nullptr;
  void* block = cached->second.back();
  cached->second.pop_back();
  return block;
}

void* CachingAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  T6_CHECK(bytes <= kMaxRequest, "CUDA out of memory: cannot allocate ", bytes, " bytes (", gib(bytes), ")");
  const size_t size = size_class(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  void* block = open_pool_ != 0 ? take_cached(pool_blocks_[open_pool_], size) : nullptr;
  if (block == nullptr) block = take_cached(free_blocks_, size);
  if (block == nullptr) {
    cudaError_t status = cudaMalloc(&block, size);
    // Freeing the cache waits for the stream, which a capture forbids: then the request just fails.
    if (status == cudaErrorMemoryAllocation && open_pool_ == 0) {
      cudaGetLastError();  // the failed cudaMalloc is recorded; clear it so no later check reports it
      release_cached_locked();
      status = cudaMalloc(&block, size);
    }
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      throw Error(cat("CUDA out of memory: tried to allocate ", bytes, " bytes (", gib(bytes), "); tensors hold ",
                      gib(current_bytes_), ", the caching allocator holds ", gib(reserved_bytes_),
                      " in all, and the GPU has ", gib(free_bytes), " free of ", gib(total_bytes),
                      ". Reduce the batch size or sequence length."));
    }
    T6_CUDA_CHECK(status);
    reserved_bytes_ += size;
  }
  live_blocks_.emplace(block, Live{size, open_pool_});
  current_bytes_ += size;
  peak_bytes_ = std::max(peak_bytes_, current_bytes_);
  return block;
}

void CachingAllocator::deallocate(void* ptr) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto live = live_blocks_.find(ptr);
  T6_CHECK(live != live_blocks_.end(), "CUDA deallocate: pointer ", ptr,
           " was not allocated by the CUDA backend (or was freed twice)");
  const auto pool = pool_blocks_.find(live->second.pool);
  FreeLists& lists = pool != pool_blocks_.end() ? pool->second : free_blocks_;
  lists[live->second.size].push_back(ptr);
  current_bytes_ -= live->second.size;
  live_blocks_.erase(live);
}

void CachingAllocator::open_pool(int64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  T6_CHECK(id != 0 && open_pool_ == 0, "CachingAllocator: pool ", id, " opened while pool ", open_pool_, " is open");
  open_pool_ = id;
  pool_blocks_[id];
}

void CachingAllocator::close_pool() {
  std::lock_guard<std::mutex> lock(mutex_);
  open_pool_ = 0;
}

void CachingAllocator::release_pool(int64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto pool = pool_blocks_.find(id);
  if (pool == pool_blocks_.end()) return;
  for (auto& [size, blocks] : pool->second)
    free_blocks_[size].insert(free_blocks_[size].end(), blocks.begin(), blocks.end());
  pool_blocks_.erase(pool);
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
}

void CachingAllocator::release_cached_locked() {
  // Queued kernels may still use a cached block, so wait for them before giving memory back.
  T6_CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (auto& [size, blocks] : free_blocks_) {
    while (!blocks.empty()) {
      void* block = blocks.back();
      blocks.pop_back();
      reserved_bytes_ -= size;
      T6_CUDA_CHECK(cudaFree(block));
    }
  }
}

Backend::MemoryStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {current_bytes_, peak_bytes_, reserved_bytes_};
}

}  // namespace t6
