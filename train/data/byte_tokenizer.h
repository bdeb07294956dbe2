// The byte tokenizer: token id = byte value, 256 ids, nothing else (no end-of-text token).
#pragma once
#include "train/data/tokenizer.h"

namespace t6 {

class ByteTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode_token(int32_t id) const override;
  int32_t vocab_size() const override { return 256; }
  std::optional<int32_t> end_of_text() const override { return std::nullopt; }
  std::string name() const override { return "byte"; }
};

}  // namespace t6
