// Token shard files, the format of llm.c and the reference data scripts: a header of 256 little-endian
// int32 ([0] = 20240520 magic, [1] = 1 version, [2] = token count, the rest 0), then that many uint16
// tokens, little-endian.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace t6 {

constexpr int32_t kShardMagic = 20240520;
constexpr int32_t kShardVersion = 1;
constexpr int64_t kShardHeaderInts = 256;
constexpr int64_t kShardHeaderBytes = kShardHeaderInts * 4;

// Writes atomically (train/atomic_file.h): a crash never leaves a half-written shard under `path`.
void write_token_shard(const std::string& path, std::span<const uint16_t> tokens);

// Reads a whole shard, checking the header (magic, version, token count against the file size) and
// that every token is < vocab_size. Any problem is a t6::Error naming the file (and the token offset for
// an out-of-range id) and how to fix it.
std::vector<uint16_t> read_token_shard(const std::string& path, int64_t vocab_size);

}  // namespace t6
