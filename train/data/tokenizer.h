// The tokenizer interface: text (bytes) <-> token ids. Two implementations: "byte" (one id per byte) and
// "gpt2" (GPT-2's byte-level BPE). Use make_tokenizer to get one by name.
#pragma once
#include "core/enum_names.h"
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace t6 {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text is taken as raw bytes: it need not be valid UTF-8, and decode(encode(s)) == s for every s.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // The bytes of one token. They may be part of a multi-byte UTF-8 character, so a stream of decoded
  // tokens must be written out as bytes, not checked for UTF-8 one token at a time.
  virtual std::string decode_token(int32_t id) const = 0;
  // The concatenated bytes of the tokens. Throws t6::Error on an id outside [0, vocab_size()).
  std::string decode(const std::vector<int32_t>& ids) const;

  virtual int32_t vocab_size() const = 0;
  // The id placed before each document, if the vocabulary has one.
  virtual std::optional<int32_t> end_of_text() const = 0;
  virtual std::string name() const = 0;
};

enum class TokenizerKind : uint8_t { Byte, GPT2 };
const EnumNames<TokenizerKind>& tokenizer_kind_names();  // "byte", "gpt2"

// gpt2_dir: where encoder.json and vocab.bpe are; empty means search the usual places (see
// find_gpt2_vocab_dir in train/data/gpt2_tokenizer.h).
std::unique_ptr<Tokenizer> make_tokenizer(TokenizerKind kind, const std::string& gpt2_dir = "");

}  // namespace t6
