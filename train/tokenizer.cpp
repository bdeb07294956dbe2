// The tokenizer factory and the decode shared by every tokenizer.
#include "train/tokenizer.h"

#include "core/error.h"
#include "train/byte_tokenizer.h"
#include "train/gpt2_tokenizer.h"

namespace t6 {

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  for (const int32_t id : ids) text += decode_token(id);
  return text;
}

std::unique_ptr<Tokenizer> make_tokenizer(const std::string& name, const std::string& gpt2_dir) {
  if (name == "byte") return std::make_unique<ByteTokenizer>();
  if (name == "gpt2") return std::make_unique<Gpt2Tokenizer>(gpt2_dir.empty() ? find_gpt2_vocab_dir() : gpt2_dir);
  throw Error(cat("unknown tokenizer '", name, "'; allowed values: byte, gpt2"));
}

}  // namespace t6
