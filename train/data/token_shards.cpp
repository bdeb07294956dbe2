// Reading and writing token shards (see token_shards.h for the format).
#include "train/data/token_shards.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "train/io/atomic_file.h"

namespace t6 {

// The format is little-endian; we copy memory as is, which is right only on a little-endian machine.
static_assert(std::endian::native == std::endian::little, "token shards are read and written as little-endian");

namespace {

const char* const kRegenerate = "regenerate it with `t6 prepare`";

// A file opened for reading, with its fstat(2), closed when it goes out of scope.
struct OpenFile {
  explicit OpenFile(const std::string& path) : fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    T6_CHECK(fd >= 0, "cannot open token shard ", path, ": ", std::strerror(errno), "; ",
             errno == ENOENT ? "check the path, or " : "", kRegenerate);
    if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
      ::close(fd);
      throw Error(cat("token shard ", path, " is not a regular file; ", kRegenerate));
    }
  }
  ~OpenFile() { ::close(fd); }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  int fd;
  struct stat info {};
};

}  // namespace

void write_token_shard(const std::string& path, std::span<const uint16_t> tokens) {
  T6_CHECK(tokens.size() <= INT32_MAX, "token shard ", path, ": ", tokens.size(),
           " tokens do not fit the int32 count of the header; write at most ", INT32_MAX, " per shard");
  const int32_t header[kShardHeaderInts] = {kShardMagic, kShardVersion, static_cast<int32_t>(tokens.size())};
  write_file_atomically(path, [&](std::FILE* file) {
    std::fwrite(header, sizeof header, 1, file);
    if (!tokens.empty()) std::fwrite(tokens.data(), tokens.size_bytes(), 1, file);
  });
}

MappedTokenShard::MappedTokenShard(const std::string& path) : path_(path) {
  const OpenFile file(path);
  const auto file_bytes = static_cast<int64_t>(file.info.st_size);
  T6_CHECK(file_bytes > 0, "token shard ", path, " is empty (0 bytes), probably left by an interrupted run; ",
           kRegenerate);
  T6_CHECK(file_bytes >= kShardHeaderBytes, "token shard ", path, " is truncated: ", file_bytes,
           " bytes, shorter than the ", kShardHeaderBytes, "-byte header; ", kRegenerate);
  int32_t header[kShardHeaderInts];
  T6_CHECK(::pread(file.fd, header, sizeof header, 0) == static_cast<ssize_t>(sizeof header),
           "cannot read the header of token shard ", path, ": ", std::strerror(errno));
  T6_CHECK(header[0] == kShardMagic, "token shard ", path, " has magic number ", header[0], " instead of ",
           kShardMagic, ": it is not a token shard (or has the wrong byte order); ", kRegenerate);
  T6_CHECK(header[1] == kShardVersion, "token shard ", path, " has format version ", header[1],
           ", but only version ", kShardVersion, " (uint16 tokens) is supported; ", kRegenerate);
  const int64_t count = header[2];
  const int64_t expected_bytes = kShardHeaderBytes + 2 * count;
  T6_CHECK(count >= 0 && file_bytes == expected_bytes, "token shard ", path, " is ", file_bytes,
           " bytes, but its header promises ", count, " tokens (", expected_bytes, " bytes): the file is ",
           file_bytes < expected_bytes ? "truncated" : "corrupt", "; ", kRegenerate);

  void* map = ::mmap(nullptr, static_cast<size_t>(file_bytes), PROT_READ, MAP_PRIVATE, file.fd, 0);
  T6_CHECK(map != MAP_FAILED, "cannot map token shard ", path, " into memory: ", std::strerror(errno));
  map_ = map, map_bytes_ = static_cast<size_t>(file_bytes), count_ = count;
  device_ = file.info.st_dev, inode_ = file.info.st_ino;
}

MappedTokenShard::~MappedTokenShard() {
  if (map_) ::munmap(map_, map_bytes_);
}

MappedTokenShard::MappedTokenShard(MappedTokenShard&& other) noexcept
    : path_(std::move(other.path_)),
      map_(std::exchange(other.map_, nullptr)),
      map_bytes_(other.map_bytes_),
      count_(other.count_),
      device_(other.device_),
      inode_(other.inode_) {}

const uint16_t* MappedTokenShard::tokens() const {
  return reinterpret_cast<const uint16_t*>(static_cast<const char*>(map_) + kShardHeaderBytes);
}

void MappedTokenShard::check_not_truncated() const {
  struct stat info {};
  if (::stat(path_.c_str(), &info) != 0 || info.st_dev != device_ || info.st_ino != inode_) return;  // replaced
  T6_CHECK(static_cast<size_t>(info.st_size) >= map_bytes_, "token shard ", path_, " was truncated to ",
           info.st_size, " bytes while t6 was reading it (it had ", map_bytes_, "); a shard must not change "
           "while a run uses it: restore the file, or ", kRegenerate, " and start again");
}

void MappedTokenShard::copy_tokens(int64_t begin, int64_t count, int64_t vocab_size, int32_t* out) const {
  T6_CHECK(begin >= 0 && count >= 0 && begin + count <= count_, "token shard ", path_, ": tokens [", begin, ", ",
           begin + count, ") are outside its ", count_, " tokens");
  if (count == 0) return;
  check_not_truncated();
  const uint16_t* source = tokens() + begin;
  for (int64_t i = 0; i < count; ++i) {
    out[i] = source[i];
    T6_CHECK(out[i] < vocab_size, "token shard ", path_, ": token ", out[i], " at offset ", begin + i,
             " is outside the vocabulary (size ", vocab_size, "); the shard was made with another tokenizer: ",
             "regenerate it with `t6 prepare --tokenizer ...` or use a model with the matching vocab_size");
  }
  // The pages stay in the page cache but no longer count as this process's memory (its RSS), so
  // reading a data set of any size keeps the resident memory flat. A page fault maps the whole page-cache
  // folio around the address (up to 2 MiB: huge pages, readahead's large folios), not just the page, so
  // the pages given back reach 2 MiB past the copied tokens on either side; what a later copy needs again
  // is mapped again from the cache.
  static const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  constexpr uintptr_t kFolioReach = uintptr_t{2} << 20;
  const auto map_begin = reinterpret_cast<uintptr_t>(map_), map_end = map_begin + map_bytes_;
  const auto first = std::max(map_begin + kFolioReach, reinterpret_cast<uintptr_t>(source) & ~(page - 1)) - kFolioReach;
  const auto last = std::min(map_end, ((reinterpret_cast<uintptr_t>(source + count) + page - 1) & ~(page - 1)) + kFolioReach);
  ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

TokenShardWriter::TokenShardWriter(std::string path)
    : path_(std::move(path)), temporary_(path_ + ".tmp." + std::to_string(::getpid())) {
  file_ = std::fopen(temporary_.c_str(), "wbe");
  T6_CHECK(file_, "cannot write token shard ", path_, ": cannot create '", temporary_, "': ", std::strerror(errno));
  const int32_t header[kShardHeaderInts] = {};  // the count is written by finish()
  append_bytes(header, sizeof header);
}

TokenShardWriter::~TokenShardWriter() {
  if (file_) std::fclose(file_);
  if (!committed_) std::remove(temporary_.c_str());
}

void TokenShardWriter::append_bytes(const void* bytes, size_t size) {
  T6_CHECK(std::fwrite(bytes, 1, size, file_) == size, "cannot write token shard ", path_, ": writing '", temporary_,
           "' failed: ", std::strerror(errno), " (is the disk full?)");
}

void TokenShardWriter::append(std::span<const uint16_t> tokens) {
  T6_CHECK(file_, "token shard ", path_, ": append after finish");
  T6_CHECK(count_ + static_cast<int64_t>(tokens.size()) <= INT32_MAX, "token shard ", path_, ": more than ", INT32_MAX,
           " tokens do not fit the int32 count of the header; write at most that many per shard");
  if (!tokens.empty()) append_bytes(tokens.data(), tokens.size_bytes());
  count_ += static_cast<int64_t>(tokens.size());
}

void TokenShardWriter::finish() {
  if (!file_) return;
  const int32_t header[3] = {kShardMagic, kShardVersion, static_cast<int32_t>(count_)};
  const bool written = std::fseek(file_, 0, SEEK_SET) == 0 && std::fwrite(header, sizeof header, 1, file_) == 1 &&
                       std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  const int error = errno;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  T6_CHECK(written && closed, "cannot write token shard ", path_, ": finishing '", temporary_, "' failed: ",
           std::strerror(written ? errno : error));
}

void TokenShardWriter::keep_first(int64_t n) {
  T6_CHECK(!file_ && n >= 0 && n <= count_, "token shard ", path_, ": keep_first(", n, ") needs a finished shard of at "
           "least that many tokens");
  if (n == count_) return;
  const int fd = ::open(temporary_.c_str(), O_WRONLY | O_CLOEXEC);
  const int32_t count = static_cast<int32_t>(n);
  const bool done = fd >= 0 && ::ftruncate(fd, kShardHeaderBytes + 2 * n) == 0 &&
                    ::pwrite(fd, &count, sizeof count, 2 * sizeof(int32_t)) == sizeof count && ::fsync(fd) == 0;
  const int error = errno;
  if (fd >= 0) ::close(fd);
  T6_CHECK(done, "cannot write token shard ", path_, ": shortening '", temporary_, "' failed: ", std::strerror(error));
  count_ = n;
}

std::string TokenShardWriter::commit() {
  finish();
  T6_CHECK(std::rename(temporary_.c_str(), path_.c_str()) == 0, "cannot write token shard ", path_, ": renaming '",
           temporary_, "' failed: ", std::strerror(errno));
  committed_ = true;
  return path_;
}

std::vector<uint16_t> read_token_shard(const std::string& path, int64_t vocab_size) {
  const MappedTokenShard shard(path);
  std::vector<int32_t> ids(static_cast<size_t>(shard.size()));
  shard.copy_tokens(0, shard.size(), vocab_size, ids.data());
  return {ids.begin(), ids.end()};
}

}  // namespace t6
