// The CPU caching allocator (core/cpu/caching_allocator.h): blocks come back for the next request of
// their size class, the statistics add up, cached memory can be given back, every block is aligned
// and as large as asked for at any size, OpenMP threads may allocate and free at once, and
// T6_CPU_CACHE is read as documented. Each case uses an allocator of its own, caching even in the
// sanitizer build (where the backend's own allocator does not cache).
#include <doctest/doctest.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/cpu/caching_allocator.h"
#include "core/cpu/cpu_backend.h"
#include "core/random.h"

using namespace t6;
using t6::cpu::CachingAllocator;

namespace {

bool aligned_to(const void* p, size_t alignment) { return reinterpret_cast<uintptr_t>(p) % alignment == 0; }

// Sets an environment variable for one scope, restoring what it held.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() { old_.empty() ? unsetenv(name_) : setenv(name_, old_.c_str(), 1); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::string old_;
};

}  // namespace

TEST_SUITE("cpu caching allocator") {

TEST_CASE("a freed block is handed to the next request of its size class, with no new memory") {
  CachingAllocator cache(true);
  void* first = cache.allocate(1000);
  cache.deallocate(first, 1000);
  const size_t reserved = cache.stats().reserved_bytes;
  void* again = cache.allocate(1000);
  CHECK(again == first);
  cache.deallocate(again, 1000);
  void* same_class = cache.allocate(1020);  // 1000 and 1020 share the 1024-byte class
  CHECK(same_class == first);
  void* other_class = cache.allocate(4000);
  CHECK(other_class != first);
  CHECK(cache.stats().reserved_bytes == reserved + CachingAllocator::size_class(4000));
  cache.deallocate(same_class, 1020);
  cache.deallocate(other_class, 4000);
}

TEST_CASE("statistics: bytes in use, their peak, and whole blocks held") {
  CachingAllocator cache(true);
  void* a = cache.allocate(1000);
  void* b = cache.allocate(300000);
  Backend::MemoryStats s = cache.stats();
  CHECK(s.current_bytes == 301000);
  CHECK(s.peak_bytes == 301000);
  CHECK(s.reserved_bytes == CachingAllocator::size_class(1000) + CachingAllocator::size_class(300000));
  cache.deallocate(b, 300000);
  s = cache.stats();
  CHECK(s.current_bytes == 1000);
  CHECK(s.peak_bytes == 301000);
  CHECK(s.reserved_bytes == CachingAllocator::size_class(1000) + CachingAllocator::size_class(300000));
  cache.deallocate(a, 1000);
  CHECK(cache.stats().current_bytes == 0);
}

TEST_CASE("release_cached gives back the free blocks and keeps the ones in use") {
  CachingAllocator cache(true);
  void* kept = cache.allocate(5000);
  std::memset(kept, 7, 5000);
  for (size_t bytes : {size_t{100}, size_t{70000}, size_t{3} << 20}) cache.deallocate(cache.allocate(bytes), bytes);
  CHECK(cache.stats().reserved_bytes > CachingAllocator::size_class(5000));
  cache.release_cached();
  CHECK(cache.stats().reserved_bytes == CachingAllocator::size_class(5000));
  CHECK(static_cast<unsigned char*>(kept)[4999] == 7);
  cache.deallocate(kept, 5000);
  cache.release_cached();
  CHECK(cache.stats().reserved_bytes == 0);
}

TEST_CASE("the CPU backend's cache can be given back") {
  auto& cpu = static_cast<cpu::CpuBackend&>(cpu_backend());
  const size_t bytes = size_t{5} << 20;
  cpu.deallocate(cpu.allocate(bytes), bytes);
  const Backend::MemoryStats before = cpu.memory_stats();
  cpu.release_cached_memory();
  const Backend::MemoryStats after = cpu.memory_stats();
  CHECK(after.current_bytes == before.current_bytes);
  const size_t cached = cpu.caches_memory() ? CachingAllocator::size_class(bytes) : 0;
  CHECK(after.reserved_bytes + cached <= before.reserved_bytes);
}

TEST_CASE("uncached, every block goes back at once") {
  CachingAllocator direct(false);
  void* p = direct.allocate(100000);
  CHECK(direct.stats().reserved_bytes == 100032);  // rounded to whole cache lines only
  direct.deallocate(p, 100000);
  CHECK(direct.stats().reserved_bytes == 0);
  CHECK(direct.stats().peak_bytes == 100000);
}

TEST_CASE("size classes: at least the size asked for, at most a quarter more, whole cache lines") {
  size_t previous = 0;
  for (size_t bytes = 0; bytes < (size_t{1} << 40); bytes = bytes < 4096 ? bytes + 1 : bytes * 9 / 8 + 1) {
    const size_t c = CachingAllocator::size_class(bytes);
    INFO("bytes ", bytes, " → class ", c);
    CHECK(c >= bytes);
    CHECK(c % 64 == 0);
    CHECK(c <= std::max<size_t>(64, bytes + bytes / 4 + 63));
    CHECK(c >= previous);
    CHECK(CachingAllocator::size_class(c) == c);  // a class is its own class
    previous = c;
  }
}

TEST_CASE("blocks of many sizes are aligned, writable to their end and distinct") {
  CachingAllocator cache(true);
  Generator gen(18);
  struct Block {
    unsigned char* p;
    size_t bytes;
  };
  std::vector<Block> blocks;
  for (int round = 0; round < 3; ++round) {  // the later rounds take blocks from the free lists
    for (int i = 0; i < 150; ++i) {
      const size_t bytes = i == 0 ? 0 : static_cast<size_t>(std::exp2(gen.uniform() * 22.0));  // up to 4 MiB
      auto* p = static_cast<unsigned char*>(cache.allocate(bytes));
      REQUIRE(p != nullptr);
      CHECK(aligned_to(p, 64));
      std::memset(p, i & 0xff, bytes);
      blocks.push_back({p, bytes});
    }
    for (size_t i = 0; i < blocks.size(); ++i)
      if (blocks[i].bytes > 0) CHECK(blocks[i].p[blocks[i].bytes - 1] == (i & 0xff));  // nothing overlapped
    for (const Block& b : blocks) cache.deallocate(b.p, b.bytes);
    blocks.clear();
  }
  CHECK(cache.stats().current_bytes == 0);
}

TEST_CASE("OpenMP threads allocate and free at once") {
  CachingAllocator cache(true);
  int failures = 0;
#pragma omp parallel for reduction(+ : failures)
  for (int i = 0; i < 4000; ++i) {
    const size_t bytes = 64 + static_cast<size_t>(i % 37) * 1000;
    auto* p = static_cast<unsigned char*>(cache.allocate(bytes));
    std::memset(p, i & 0xff, bytes);
    // Another thread writing into this block (a block handed out twice) would change these.
    if (p[0] != (i & 0xff) || p[bytes - 1] != (i & 0xff)) ++failures;
    cache.deallocate(p, bytes);
  }
  CHECK(failures == 0);
  CHECK(cache.stats().current_bytes == 0);
  CHECK(cache.stats().peak_bytes <= static_cast<size_t>(omp_get_max_threads()) * (64 + 36 * 1000));
}

TEST_CASE("T6_CPU_CACHE: unset or 1 caches, 0 does not, anything else is an error that says what to set") {
#ifdef T6_SANITIZED
  const ScopedEnv on("T6_CPU_CACHE", "1");
  CHECK_FALSE(cpu::cpu_cache_from_environment());  // the sanitizer build never caches
#else
  {
    const ScopedEnv unset("T6_CPU_CACHE", "");
    CHECK(cpu::cpu_cache_from_environment());
  }
  {
    const ScopedEnv on("T6_CPU_CACHE", "1");
    CHECK(cpu::cpu_cache_from_environment());
  }
  {
    const ScopedEnv off("T6_CPU_CACHE", "0");
    CHECK_FALSE(cpu::cpu_cache_from_environment());
  }
  const ScopedEnv wrong("T6_CPU_CACHE", "off");
  CHECK_THROWS_WITH_AS(cpu::cpu_cache_from_environment(), doctest::Contains("set it to 0"), Error);
#endif
}

}  // TEST_SUITE
