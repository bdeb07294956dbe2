// The little Unicode knowledge the GPT-2 pre-tokenizer needs: decoding one UTF-8 character (tolerating
// invalid bytes) and sorting a code point into letter (\p{L}), number (\p{N}), white space (\s) or other.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace t6::unicode {

enum class CharClass : uint8_t { Letter, Number, Space, Other };

// Category L* (Lu Ll Lt Lm Lo) -> Letter, N* (Nd Nl No) -> Number, White_Space -> Space, else Other.
CharClass classify(char32_t codepoint);

// One character of a UTF-8 string. An invalid byte (stray continuation byte, overlong form, surrogate,
// truncated sequence, ...) decodes as a single "character" of length 1 with valid = false, so any byte
// string splits into characters whose lengths add up to the string's length.
struct Utf8Char {
  char32_t codepoint;  // meaningless when !valid
  int length;          // bytes, 1..4
  bool valid;
};
Utf8Char decode_utf8(std::string_view text, size_t pos);

// The class of the character at `pos`; an invalid byte is Other (neither letter, number nor space).
struct ClassifiedChar {
  CharClass cls;
  int length;
};
ClassifiedChar classify_at(std::string_view text, size_t pos);

}  // namespace t6::unicode
