// Token shards: the exact file layout, round trips, atomic writes, and one clear error per kind of
// broken file (each naming the file).
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>

#include "data_test_support.h"
#include "train/data/token_shards.h"

using t6::testing::error_message;
using t6::testing::TempDir;

namespace {

// A shard file built by hand: header words, then raw token bytes.
std::string shard_bytes(int32_t magic, int32_t version, int32_t count, const std::vector<uint16_t>& tokens) {
  std::vector<int32_t> header(t6::kShardHeaderInts, 0);
  header[0] = magic, header[1] = version, header[2] = count;
  std::string bytes(reinterpret_cast<const char*>(header.data()), header.size() * 4);
  bytes.append(reinterpret_cast<const char*>(tokens.data()), tokens.size() * 2);
  return bytes;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("token shards: layout and round trip") {
  TempDir dir;
  const std::string path = dir / "train_000000.bin";
  const std::vector<uint16_t> tokens = {0, 1, 50256, 65535, 7};
  t6::write_token_shard(path, tokens);

  CHECK(std::filesystem::file_size(path) == 1024 + 2 * tokens.size());
  std::ifstream file(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  CHECK(bytes == shard_bytes(20240520, 1, 5, tokens));
  CHECK(t6::read_token_shard(path, 65536) == tokens);

  // overwriting replaces the file and leaves no temporary file behind
  t6::write_token_shard(path, std::vector<uint16_t>{3});
  CHECK(t6::read_token_shard(path, 4) == std::vector<uint16_t>{3});
  t6::write_token_shard(dir / "empty.bin", std::vector<uint16_t>{});
  CHECK(t6::read_token_shard(dir / "empty.bin", 1).empty());
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()) == 2);
}

TEST_CASE("token shards: every broken file gets its own error naming the file") {
  TempDir dir;
  const std::vector<uint16_t> tokens = {10, 20, 30, 40};
  const auto read_error = [&](const std::string& name, const std::string& bytes, int64_t vocab_size = 256) {
    const std::string path = dir.write(name, bytes);
    const std::string message = error_message([&] { t6::read_token_shard(path, vocab_size); });
    CHECK(contains(message, path));
    CHECK(contains(message, "t6 prepare"));  // the fix
    return message;
  };

  CHECK(contains(read_error("empty.bin", ""), "is empty"));
  CHECK(contains(read_error("short_header.bin", shard_bytes(20240520, 1, 4, tokens).substr(0, 100)),
                 "shorter than the 1024-byte header"));
  CHECK(contains(read_error("short_body.bin", shard_bytes(20240520, 1, 4, tokens).substr(0, 1024 + 5)),
                 "truncated"));
  CHECK(contains(read_error("long_body.bin", shard_bytes(20240520, 1, 3, tokens)), "corrupt"));
  CHECK(contains(read_error("magic.bin", shard_bytes(20240521, 1, 4, tokens)), "magic number 20240521"));
  CHECK(contains(read_error("version.bin", shard_bytes(20240520, 2, 4, tokens)), "format version 2"));
  CHECK(contains(read_error("negative.bin", shard_bytes(20240520, 1, -1, tokens)), "promises -1 tokens"));

  const std::string message = read_error("range.bin", shard_bytes(20240520, 1, 4, {1, 2, 300, 4}));
  CHECK(contains(message, "token 300 at offset 2"));
  CHECK(contains(message, "size 256"));

  CHECK(contains(error_message([&] { t6::read_token_shard(dir / "missing.bin", 256); }), dir / "missing.bin"));
}

TEST_CASE("token shards: an unwritable destination is an error naming it") {
  TempDir dir;
  const std::string path = dir / "no_such_dir/train_000000.bin";
  const std::string message = error_message([&] { t6::write_token_shard(path, std::vector<uint16_t>{1}); });
  CHECK(contains(message, dir / "no_such_dir/train_000000.bin"));
}

TEST_CASE("token shards: a mapped shard copies ranges, checks their ids, and survives a change of its file") {
  TempDir dir;
  const std::string path = dir / "train_000000.bin";
  t6::write_token_shard(path, std::vector<uint16_t>{5, 6, 7, 300, 9});
  const t6::MappedTokenShard shard(path);  // opening reads the header only: token 300 passes
  CHECK(shard.size() == 5);
  std::vector<int32_t> out(3);
  shard.copy_tokens(0, 3, 256, out.data());
  CHECK(out == std::vector<int32_t>{5, 6, 7});
  std::string message = error_message([&] { shard.copy_tokens(2, 3, 256, out.data()); });
  CHECK(contains(message, path));
  CHECK(contains(message, "token 300 at offset 3"));
  CHECK(contains(error_message([&] { shard.copy_tokens(4, 2, 256, out.data()); }), "outside its 5 tokens"));

  // Replaced (a new file renamed over it, as t6 prepare does): the mapping keeps the old tokens.
  t6::write_token_shard(path, std::vector<uint16_t>{1});
  shard.copy_tokens(0, 3, 256, out.data());
  CHECK(out == std::vector<int32_t>{5, 6, 7});

  // Truncated in place: one clear error instead of SIGBUS.
  const std::string other = dir / "train_000001.bin";
  t6::write_token_shard(other, std::vector<uint16_t>(10000, 4));
  const t6::MappedTokenShard mapped(other);
  std::filesystem::resize_file(other, 1024 + 2);
  message = error_message([&] { mapped.copy_tokens(9000, 3, 256, out.data()); });
  CHECK(contains(message, other));
  CHECK(contains(message, "was truncated to 1026 bytes"));
}

TEST_CASE("token shards: a shard written in pieces, shortened, committed or abandoned") {
  TempDir dir;
  const std::string path = dir / "val_000000.bin";
  {
    t6::TokenShardWriter writer(path);
    writer.append(std::vector<uint16_t>{1, 2, 3});
    writer.append(std::vector<uint16_t>{4, 5});
    CHECK(writer.size() == 5);
    CHECK_FALSE(std::filesystem::exists(path));  // nothing at the final path before commit()
    writer.finish();
    writer.keep_first(4);
    CHECK(writer.commit() == path);
  }
  CHECK(t6::read_token_shard(path, 256) == std::vector<uint16_t>{1, 2, 3, 4});
  {
    t6::TokenShardWriter abandoned(dir / "val_000001.bin");
    abandoned.append(std::vector<uint16_t>{7});
  }
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()) == 1);
}
