// Token shard files, the format of llm.c and the reference data scripts: a header of 256 little-endian
// int32 ([0] = 20240520 magic, [1] = 1 version, [2] = token count, the rest 0), then that many uint16
// tokens, little-endian.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <sys/types.h>

#include <cstdio>

#include <vector>

namespace t6 {

constexpr int32_t kShardMagic = 20240520;
constexpr int32_t kShardVersion = 1;
constexpr int64_t kShardHeaderInts = 256;
constexpr int64_t kShardHeaderBytes = kShardHeaderInts * 4;

// Writes atomically (train/atomic_file.h): a crash never leaves a half-written shard under `path`.
void write_token_shard(const std::string& path, std::span<const uint16_t> tokens);

// A shard mapped read-only into memory (mmap): opening one costs no memory whatever its size, its
// tokens are read from the page cache when copied out, and copy_tokens() hands the pages back right
// after, so a process holds only the tokens it is copying, not the ones it has read.
//
// Opening checks the header (magic, version, token count against the file size) but not the token ids,
// since reading them all would fault in the whole file: copy_tokens() checks the ids it copies. Any
// problem is a t6::Error naming the file (and the token offset for an out-of-range id) and the fix.
//
// A mapped file must not shrink while it is mapped: reading a page that is no longer in the file raises
// SIGBUS. copy_tokens() checks the file size first, so a shard truncated in place is one clear error;
// only a truncation in the microseconds between that check and the copy remains fatal. Replacing a
// shard (as `t6 prepare` does, writing a new file and renaming it) is harmless: the mapping keeps the
// old file.
class MappedTokenShard {
 public:
  explicit MappedTokenShard(const std::string& path);
  ~MappedTokenShard();
  MappedTokenShard(MappedTokenShard&& other) noexcept;
  MappedTokenShard(const MappedTokenShard&) = delete;
  MappedTokenShard& operator=(const MappedTokenShard&) = delete;
  MappedTokenShard& operator=(MappedTokenShard&&) = delete;

  const std::string& path() const { return path_; }
  int64_t size() const { return count_; }  // tokens

  // Copies the tokens [begin, begin + count) to out[0 .. count) and checks that each is < vocab_size.
  void copy_tokens(int64_t begin, int64_t count, int64_t vocab_size, int32_t* out) const;

 private:
  const uint16_t* tokens() const;
  void check_not_truncated() const;

  std::string path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  int64_t count_ = 0;
  dev_t device_ = 0;  // which file was mapped, to tell a truncated shard from a replaced one
  ino_t inode_ = 0;
};

// A shard written as its tokens come, for shards too large to assemble in memory. The tokens go to a
// temporary file next to `path`, "<path>.tmp.<pid>" (the name of train/io/atomic_file.h, so that
// remove_stale_temporaries finds one that a killed run left); finish() writes the header's count,
// flushes, syncs and closes it; commit() renames it to `path`. A writer destroyed before commit()
// removes its temporary file, so a failure leaves nothing behind and never a partial shard at `path`.
class TokenShardWriter {
 public:
  explicit TokenShardWriter(std::string path);
  ~TokenShardWriter();
  TokenShardWriter(const TokenShardWriter&) = delete;
  TokenShardWriter& operator=(const TokenShardWriter&) = delete;

  void append(std::span<const uint16_t> tokens);
  int64_t size() const { return count_; }  // tokens
  const std::string& temporary_path() const { return temporary_; }

  void finish();               // no more append() after it
  void keep_first(int64_t n);  // after finish(): drops the tokens after the first n
  std::string commit();        // finishes if needed, renames; returns `path`

 private:
  void append_bytes(const void* bytes, size_t size);

  std::string path_, temporary_;
  std::FILE* file_ = nullptr;  // null once finished
  int64_t count_ = 0;
  bool committed_ = false;
};

// Reads a whole shard (a MappedTokenShard copied out), with the same checks and errors.
std::vector<uint16_t> read_token_shard(const std::string& path, int64_t vocab_size);

}  // namespace t6
