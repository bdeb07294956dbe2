// The caching host allocator (see caching_allocator.h).
#include "core/cpu/caching_allocator.h"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"

namespace t6::cpu {

namespace {

constexpr size_t kAlignment = 64;  // a cache line
// Far beyond any host; keeps the size-class arithmetic below from overflowing.
constexpr size_t kMaxRequest = size_t{1} << 60;

size_t round_up(size_t bytes, size_t step) { return (bytes + step - 1) / step * step; }

std::string mib(size_t bytes) { return cat(bytes >> 20, " MiB"); }

}  // namespace

size_t CachingAllocator::size_class(size_t bytes) {
  if (bytes <= 4 * kAlignment) return round_up(std::max<size_t>(bytes, 1), kAlignment);
  // Four classes per power of two: [p, 2p) is cut into steps of p/4 (at least 64, since p ≥ 256).
  return round_up(bytes, std::bit_floor(bytes) / 4);
}

size_t CachingAllocator::block_size(size_t bytes) const {
  return caching_ ? size_class(bytes) : round_up(std::max<size_t>(bytes, 1), kAlignment);
}

CachingAllocator::~CachingAllocator() { release_cached_locked(); }

void* CachingAllocator::allocate(size_t bytes) {
  T6_CHECK(bytes <= kMaxRequest, "cpu: out of memory: cannot allocate ", bytes, " bytes");
  const size_t size = block_size(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  void* block = nullptr;
  auto cached = free_blocks_.find(size);
  if (cached != free_blocks_.end() && !cached->second.empty()) {
    block = cached->second.back();
    cached->second.pop_back();
  } else {
    block = std::aligned_alloc(kAlignment, size);  // size is a whole number of cache lines
    if (block == nullptr) {
      release_cached_locked();
      block = std::aligned_alloc(kAlignment, size);
    }
    T6_CHECK(block != nullptr, "cpu: out of memory allocating ", bytes, " bytes (", mib(current_bytes_),
             " in tensors, ", mib(reserved_bytes_), " held in all); reduce the batch size or sequence length");
    reserved_bytes_ += size;
  }
  current_bytes_ += bytes;
  peak_bytes_ = std::max(peak_bytes_, current_bytes_);
  return block;
}

void CachingAllocator::deallocate(void* ptr, size_t bytes) {
  if (ptr == nullptr) return;
  const size_t size = block_size(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  current_bytes_ -= bytes;
  if (caching_) {
    free_blocks_[size].push_back(ptr);
  } else {
    std::free(ptr);
    reserved_bytes_ -= size;
  }
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
}

void CachingAllocator::release_cached_locked() {
  for (auto& [size, blocks] : free_blocks_) {
    for (void* block : blocks) std::free(block);
    reserved_bytes_ -= size * blocks.size();
    blocks.clear();
  }
}

Backend::MemoryStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {current_bytes_, peak_bytes_, reserved_bytes_};
}

bool cpu_cache_from_environment() {
#ifdef T6_SANITIZED
  return false;  // AddressSanitizer must see every use after free, which a reused block would hide
#else
  const char* value = std::getenv("T6_CPU_CACHE");
  if (value == nullptr || *value == '\0' || std::strcmp(value, "1") == 0) return true;
  T6_CHECK(std::strcmp(value, "0") == 0, "T6_CPU_CACHE=\"", value,
           "\" is neither 0 nor 1; set it to 0 to turn the CPU caching allocator off, or unset it");
  return false;
#endif
}

}  // namespace t6::cpu
