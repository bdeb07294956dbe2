// Tokenizers: the byte tokenizer, the Unicode classes and UTF-8 decoding behind GPT-2's pre-tokenizer,
// the pre-tokenizer itself, and GPT-2 BPE against known encodings (computed with OpenAI's encoder.py).
#include <doctest/doctest.h>

#include <random>

#include "data_test_support.h"
#include "train/data/byte_tokenizer.h"
#include "train/data/gpt2_tokenizer.h"
#include "train/data/tokenizer.h"
#include "train/data/unicode_classes.h"

using t6::testing::error_message;
using t6::unicode::CharClass;
using Ids = std::vector<int32_t>;

namespace {

// Text that exercises every pre-tokenizer rule and every kind of byte.
std::vector<std::string> round_trip_texts() {
  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes += static_cast<char>(b);
  std::string random_bytes;
  std::mt19937 gen(1234);  // std::mt19937's sequence is fixed by the standard
  for (int i = 0; i < 4000; ++i) random_bytes += static_cast<char>(gen() % 256);
  return {"",
          "Hello world",
          "emoji 🤖👍🏽 and a family 👨‍👩‍👧",
          "日本語のテキスト, 中文, 한국어",
          "combining e\u0301 a\u0308 and precomposed é ä",
          "many   spaces\t\ttabs\n\n\nnewlines  \r\n trailing   ",
          "I'll say it's 'quoted' and they're DON'T",
          "invalid \xff\xfe bytes \xc0\x80 \xed\xa0\x80 truncated \xe2\x82",
          "<|endoftext|> is plain text here",
          all_bytes,
          random_bytes};
}

}  // namespace

TEST_CASE("byte tokenizer: ids are byte values") {
  t6::ByteTokenizer tokenizer;
  CHECK(tokenizer.vocab_size() == 256);
  CHECK_FALSE(tokenizer.end_of_text().has_value());
  CHECK(tokenizer.name() == "byte");
  CHECK(tokenizer.encode("Hi\n\xff") == Ids{72, 105, 10, 255});
  CHECK(tokenizer.decode({72, 105, 10, 255}) == "Hi\n\xff");
  CHECK(tokenizer.decode_token(0) == std::string(1, '\0'));
  for (const std::string& text : round_trip_texts()) CHECK(tokenizer.decode(tokenizer.encode(text)) == text);

  const std::string message = error_message([&] { tokenizer.decode({65, 256}); });
  CHECK(message.find("256") != std::string::npos);
  CHECK(message.find("0..255") != std::string::npos);
  CHECK_THROWS_AS(tokenizer.decode_token(-1), t6::Error);
}

TEST_CASE("tokenizer names: parsed once, an unknown name lists the allowed values") {
  CHECK(t6::make_tokenizer(t6::tokenizer_kind_names().parse("byte", "tokenizer"))->name() == "byte");
  const std::string message = error_message([] { t6::tokenizer_kind_names().parse("bpe", "tokenizer"); });
  CHECK(message.find("\"bpe\"") != std::string::npos);
  CHECK(message.find("\"byte\", \"gpt2\"") != std::string::npos);
}

TEST_CASE("unicode: letter, number, space and other classes") {
  using t6::unicode::classify;
  CHECK(classify(U'a') == CharClass::Letter);
  CHECK(classify(U'é') == CharClass::Letter);
  CHECK(classify(U'日') == CharClass::Letter);
  CHECK(classify(U'ʰ') == CharClass::Letter);  // Lm
  CHECK(classify(U'7') == CharClass::Number);
  CHECK(classify(U'\u0663') == CharClass::Number);  // Arabic-Indic digit three (Nd)
  CHECK(classify(U'Ⅻ') == CharClass::Number);       // Nl
  CHECK(classify(U'½') == CharClass::Number);       // No
  CHECK(classify(U' ') == CharClass::Space);
  CHECK(classify(U'\t') == CharClass::Space);
  CHECK(classify(U'\u00A0') == CharClass::Space);
  CHECK(classify(U'\u3000') == CharClass::Space);
  CHECK(classify(U'\u001C') == CharClass::Other);  // not White_Space, although Python's isspace() says so
  CHECK(classify(U'\u0301') == CharClass::Other);  // combining acute accent (Mn)
  CHECK(classify(U'🤖') == CharClass::Other);
  CHECK(classify(U'!') == CharClass::Other);
  CHECK(classify(0x10FFFF) == CharClass::Other);
}

TEST_CASE("unicode: UTF-8 decoding, invalid bytes one at a time") {
  using t6::unicode::decode_utf8;
  const auto check_valid = [](std::string_view text, char32_t codepoint) {
    const t6::unicode::Utf8Char c = decode_utf8(text, 0);
    CHECK(c.valid);
    CHECK(c.codepoint == codepoint);
    CHECK(c.length == static_cast<int>(text.size()));
  };
  check_valid("A", U'A');
  check_valid("\xc3\xa9", U'é');
  check_valid("\xe2\x82\xac", U'€');
  check_valid("\xf0\x9f\xa4\x96", U'🤖');
  check_valid("\xf4\x8f\xbf\xbf", 0x10FFFF);
  // stray continuation, overlong forms, a surrogate, above U+10FFFF, truncated, bad continuation, 0xFF
  for (const std::string_view invalid : {"\x80", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xa0\x80",
                                         "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xe2\x82", "\xe2\x28\xa1",
                                         "\xff"}) {
    const t6::unicode::Utf8Char c = decode_utf8(invalid, 0);
    CHECK_FALSE(c.valid);
    CHECK(c.length == 1);
  }
}

TEST_CASE("gpt2 pre-tokenizer: matches GPT-2's regex") {
  using Pieces = std::vector<std::string>;
  using t6::gpt2_pretokens;
  // expected values from Python: regex.findall(GPT-2's pattern, text)
  CHECK(gpt2_pretokens("Hello world") == Pieces{"Hello", " world"});
  CHECK(gpt2_pretokens("I'll  go\n\n x") == Pieces{"I", "'ll", " ", " go", "\n\n", " x"});
  CHECK(gpt2_pretokens("'''s 'S it's") == Pieces{"'''", "s", " '", "S", " it", "'s"});
  CHECK(gpt2_pretokens("a1b2 ++x") == Pieces{"a", "1", "b", "2", " ++", "x"});
  CHECK(gpt2_pretokens(" \t\n  end  ") == Pieces{" \t\n ", " end", "  "});
  CHECK(gpt2_pretokens("x  \u00a0y") == Pieces{"x", "  ", "\u00a0", "y"});
  CHECK(gpt2_pretokens("3.14 \u0663\u0664 \u00bd") == Pieces{"3", ".", "14", " \u0663\u0664", " \u00bd"});
  CHECK(gpt2_pretokens("e\u0301t\u00e9") == Pieces{"e", "\u0301", "t\u00e9"});
  CHECK(gpt2_pretokens("日本語 🤖🤖!") == Pieces{"日本語", " 🤖🤖!"});
  CHECK(gpt2_pretokens("\u3000\u3000a") == Pieces{"\u3000", "\u3000", "a"});
  CHECK(gpt2_pretokens("") == Pieces{});
  // invalid bytes behave like punctuation
  CHECK(gpt2_pretokens("a\xff" "b \xfe\x80!") == Pieces{"a", "\xff", "b", " \xfe\x80!"});
}

TEST_CASE("gpt2 pre-tokenizer: pieces always add up to the text") {
  for (const std::string& text : round_trip_texts()) {
    std::string joined;
    for (const std::string& piece : t6::gpt2_pretokens(text)) {
      CHECK_FALSE(piece.empty());
      joined += piece;
    }
    CHECK(joined == text);
  }
}

TEST_CASE("gpt2 tokenizer: known encodings" * t6::testing::needs_gpt2_vocab()) {
  const std::unique_ptr<t6::Tokenizer> tokenizer =
      t6::make_tokenizer(t6::TokenizerKind::GPT2, t6::testing::gpt2_vocab_dir_for_tests());
  CHECK(tokenizer->name() == "gpt2");
  CHECK(tokenizer->vocab_size() == 50257);
  CHECK(tokenizer->end_of_text() == 50256);

  // expected values from OpenAI's GPT-2 encoder.py
  CHECK(tokenizer->encode("Hello world") == Ids{15496, 995});
  CHECK(tokenizer->encode(" the") == Ids{262});
  CHECK(tokenizer->encode("\n") == Ids{198});
  CHECK(tokenizer->encode("<|endoftext|>") == Ids{27, 91, 437, 1659, 5239, 91, 29});  // not special
  CHECK(tokenizer->encode("Hello, world! It's 2024.") == Ids{15496, 11, 995, 0, 632, 338, 48609, 13});
  CHECK(tokenizer->encode("  multiple   spaces\n\n\nnewlines") ==
        Ids{220, 3294, 220, 220, 9029, 628, 198, 3605, 6615});
  CHECK(tokenizer->encode("We're   here.\n\n\nThe end") == Ids{1135, 821, 220, 220, 994, 13, 628, 198, 464, 886});
  CHECK(tokenizer->encode("日本語 🤖🤖!") ==
        Ids{33768, 98, 17312, 105, 45739, 252, 12520, 97, 244, 8582, 97, 244, 0});
  CHECK(tokenizer->encode("e\u0301t\u00e9 caf\u00e9") == Ids{68, 136, 223, 83, 2634, 40304});
  CHECK(tokenizer->encode("12345678 3.14159") == Ids{10163, 2231, 30924, 513, 13, 1415, 19707});
  CHECK(tokenizer->encode("") == Ids{});

  CHECK(tokenizer->decode({15496, 995}) == "Hello world");
  CHECK(tokenizer->decode_token(50256) == "<|endoftext|>");
  CHECK(tokenizer->decode_token(8582) == "\xf0\x9f");  // half of an emoji: bytes, not text
  const std::string message = error_message([&] { tokenizer->decode_token(50257); });
  CHECK(message.find("50257") != std::string::npos);
  CHECK(message.find("0..50256") != std::string::npos);
}

TEST_CASE("gpt2 tokenizer: decode(encode(s)) == s, repeated encodes agree (merge cache)" *
          t6::testing::needs_gpt2_vocab()) {
  const std::unique_ptr<t6::Tokenizer> tokenizer =
      t6::make_tokenizer(t6::TokenizerKind::GPT2, t6::testing::gpt2_vocab_dir_for_tests());
  for (const std::string& text : round_trip_texts()) {
    const Ids ids = tokenizer->encode(text);
    for (const int32_t id : ids) CHECK((id >= 0 && id < 50256));  // never the end-of-text id
    CHECK(tokenizer->decode(ids) == text);
    CHECK(tokenizer->encode(text) == ids);
  }
}

TEST_CASE("gpt2 tokenizer: missing or malformed vocabulary files are named") {
  t6::testing::TempDir dir;
  std::string message = error_message([&] { t6::Gpt2Tokenizer tokenizer(dir.path().string()); });
  CHECK(message.find(dir / "encoder.json") != std::string::npos);
  CHECK(message.find("fetch_gpt2_vocab.sh") != std::string::npos);

  dir.write("encoder.json", "{\"a\": 0, \"b\": ");
  message = error_message([&] { t6::Gpt2Tokenizer tokenizer(dir.path().string()); });
  CHECK(message.find(dir / "encoder.json") != std::string::npos);
  CHECK(message.find("not valid JSON") != std::string::npos);

  dir.write("encoder.json", "{\"a\": 0, \"b\": 5}");
  message = error_message([&] { t6::Gpt2Tokenizer tokenizer(dir.path().string()); });
  CHECK(message.find("has id 5") != std::string::npos);
}
