// The byte tokenizer: every byte of the text is one token.
#include "train/data/byte_tokenizer.h"

#include "core/error.h"

namespace t6 {

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode_token(int32_t id) const {
  T6_CHECK(id >= 0 && id < 256, "byte tokenizer: cannot decode token id ", id,
           ": its ids are the byte values 0..255 (was the model trained with another tokenizer?)");
  return std::string(1, static_cast<char>(id));
}

}  // namespace t6
