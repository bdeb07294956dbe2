// Fuzz target: the token-shard reader (llm.c format), with a byte-level vocabulary.
#include "fuzz_target.h"
#include "train/data/token_shards.h"

namespace t6::fuzz {

int token_shard(const uint8_t* data, size_t size) {
  const std::string path = input_file("shard.bin", {reinterpret_cast<const char*>(data), size});
  return refuse_or_accept([&] { (void)read_token_shard(path, 256); });
}

}  // namespace t6::fuzz

T6_FUZZ_TARGET(token_shard)
