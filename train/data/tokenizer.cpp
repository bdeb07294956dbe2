// The tokenizer factory and the decode shared by every tokenizer.
#include "train/data/tokenizer.h"

#include "core/error.h"
#include "train/data/byte_tokenizer.h"
#include "train/data/gpt2_tokenizer.h"

namespace t6 {

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  for (const int32_t id : ids) text += decode_token(id);
  return text;
}

const EnumNames<TokenizerKind>& tokenizer_kind_names() {
  static const EnumNames<TokenizerKind> names = {{TokenizerKind::Byte, "byte"}, {TokenizerKind::GPT2, "gpt2"}};
  return names;
}

std::unique_ptr<Tokenizer> make_tokenizer(TokenizerKind kind, const std::string& gpt2_dir) {
  switch (kind) {
    case TokenizerKind::Byte: return std::make_unique<ByteTokenizer>();
    case TokenizerKind::GPT2: return std::make_unique<Gpt2Tokenizer>(gpt2_dir.empty() ? find_gpt2_vocab_dir() : gpt2_dir);
  }
  throw Error("make_tokenizer: unknown tokenizer kind");
}

}  // namespace t6
