// Reading and writing token shards (see token_shards.h for the format).
#include "train/data/token_shards.h"

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "train/io/atomic_file.h"

namespace t6 {

// The format is little-endian; we copy memory as is, which is right only on a little-endian machine.
static_assert(std::endian::native == std::endian::little, "token shards are read and written as little-endian");

namespace {
const char* const kRegenerate = "regenerate it with `t6 prepare`";
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

std::vector<uint16_t> read_token_shard(const std::string& path, int64_t vocab_size) {
  std::error_code error;
  T6_CHECK(std::filesystem::is_regular_file(path, error), "token shard ", path,
           " does not exist or is not a regular file; ", kRegenerate);
  std::ifstream file(path, std::ios::binary);
  T6_CHECK(file, "cannot open token shard ", path, ": ", std::strerror(errno));
  const auto file_bytes = static_cast<int64_t>(std::filesystem::file_size(path));

  T6_CHECK(file_bytes > 0, "token shard ", path, " is empty (0 bytes), probably left by an interrupted run; ",
           kRegenerate);
  T6_CHECK(file_bytes >= kShardHeaderBytes, "token shard ", path, " is truncated: ", file_bytes,
           " bytes, shorter than the ", kShardHeaderBytes, "-byte header; ", kRegenerate);
  int32_t header[kShardHeaderInts];
  file.read(reinterpret_cast<char*>(header), sizeof header);
  T6_CHECK(file, "cannot read the header of token shard ", path);
  T6_CHECK(header[0] == kShardMagic, "token shard ", path, " has magic number ", header[0], " instead of ",
           kShardMagic, ": it is not a token shard (or has the wrong byte order); ", kRegenerate);
  T6_CHECK(header[1] == kShardVersion, "token shard ", path, " has format version ", header[1],
           ", but only version ", kShardVersion, " (uint16 tokens) is supported; ", kRegenerate);

  const int64_t count = header[2];
  const int64_t expected_bytes = kShardHeaderBytes + 2 * count;
  T6_CHECK(count >= 0 && file_bytes == expected_bytes, "token shard ", path, " is ", file_bytes,
           " bytes, but its header promises ", count, " tokens (", expected_bytes, " bytes): the file is ",
           file_bytes < expected_bytes ? "truncated" : "corrupt", "; ", kRegenerate);

  std::vector<uint16_t> tokens(static_cast<size_t>(count));
  file.read(reinterpret_cast<char*>(tokens.data()), static_cast<std::streamsize>(2 * count));
  T6_CHECK(file, "cannot read the tokens of token shard ", path);

  for (size_t i = 0; i < tokens.size(); ++i) {
    T6_CHECK(tokens[i] < vocab_size, "token shard ", path, ": token ", tokens[i], " at offset ", i,
             " is outside the vocabulary (size ", vocab_size, "); the shard was made with another tokenizer: ",
             "regenerate it with `t6 prepare --tokenizer ...` or use a model with the matching vocab_size");
  }
  return tokens;
}

}  // namespace t6
