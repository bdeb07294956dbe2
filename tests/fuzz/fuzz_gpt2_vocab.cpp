// Fuzz target: the GPT-2 vocabulary readers. The input is encoder.json and vocab.bpe joined by a NUL
// byte (all encoder.json when there is none); an accepted pair must encode and decode a text.
#include <filesystem>

#include "fuzz_target.h"
#include "train/data/gpt2_tokenizer.h"

namespace t6::fuzz {

int gpt2_vocab(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const size_t split = bytes.find('\0');
  const std::string dir = "/tmp/t6_fuzz_" + std::to_string(::getpid()) + "_gpt2";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/encoder.json", std::ios::binary | std::ios::trunc) << bytes.substr(0, split);
  std::ofstream(dir + "/vocab.bpe", std::ios::binary | std::ios::trunc)
      << (split == std::string_view::npos ? std::string_view() : bytes.substr(split + 1));
  return refuse_or_accept([&] {
    const Gpt2Tokenizer tokenizer(dir);
    (void)tokenizer.decode(tokenizer.encode("Hello world, héllo 123!\n"));
  });
}

}  // namespace t6::fuzz

T6_FUZZ_TARGET(gpt2_vocab)
