// GPT-2's byte-level BPE: loading OpenAI's vocabulary files, the pre-tokenizer, and the merge loop.
#include "train/data/gpt2_tokenizer.h"

#include <array>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "train/data/unicode_classes.h"

namespace t6 {

namespace {

constexpr size_t kMaxCacheEntries = 1 << 20;

// encoder.json and vocab.bpe spell each token as printable text: byte b is written as one code point.
// The printable Latin-1 bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for themselves; the other 68
// bytes (controls, space, 0x7F..0xA0, 0xAD) become U+0100, U+0101, ... in byte order. This is GPT-2's
// bytes_to_unicode(); here we only need the way back, code point -> byte.
std::vector<int> codepoint_to_byte_table() {
  std::vector<int> byte_of(0x100 + 68, -1);
  int next_unprintable = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    byte_of[printable ? b : next_unprintable++] = b;
  }
  return byte_of;
}

// Turns a token as spelled in the vocabulary files back into its raw bytes.
std::string token_text_to_bytes(std::string_view spelled, const std::string& file) {
  static const std::vector<int> byte_of = codepoint_to_byte_table();
  std::string bytes;
  for (size_t pos = 0; pos < spelled.size();) {
    const unicode::Utf8Char c = unicode::decode_utf8(spelled, pos);
    const bool known = c.valid && c.codepoint < byte_of.size() && byte_of[c.codepoint] >= 0;
    T6_CHECK(known, file, ": token '", spelled, "' contains a character outside GPT-2's byte alphabet; ",
             "the file is not GPT-2's (re-run scripts/fetch_gpt2_vocab.sh)");
    bytes += static_cast<char>(byte_of[c.codepoint]);
    pos += c.length;
  }
  return bytes;
}

// The length of a GPT-2 contraction ('s 't 're 've 'm 'll 'd, lowercase only) starting at `pos`, or 0.
size_t contraction_length(std::string_view text, size_t pos) {
  static constexpr std::string_view kContractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  for (const std::string_view c : kContractions)
    if (text.substr(pos, c.size()) == c) return c.size();
  return 0;
}

}  // namespace

// ---- pre-tokenizer ----------------------------------------------------------------------------------

// A hand-written matcher for
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// At each position the regex takes the first alternative that matches, so we test them in that order.
void split_gpt2_pretokens(std::string_view text, const std::function<void(std::string_view)>& emit) {
  using unicode::CharClass;
  const size_t n = text.size();
  size_t pos = 0;
  while (pos < n) {
    const size_t start = pos;

    // 's 't 're 've 'm 'll 'd
    if (const size_t length = contraction_length(text, pos)) {
      emit(text.substr(start, length));
      pos += length;
      continue;
    }

    // " ?X+" for X = letter, number, other: an optional single ' ' then a run of one class. A ' ' that
    // is followed by white space (or nothing) is not part of such a run; it is handled below.
    unicode::ClassifiedChar c = unicode::classify_at(text, pos);
    if (text[pos] == ' ' && pos + 1 < n) {
      const unicode::ClassifiedChar next = unicode::classify_at(text, pos + 1);
      if (next.cls != CharClass::Space) pos += 1, c = next;
    }
    if (c.cls != CharClass::Space) {
      const CharClass run_class = c.cls;
      pos += c.length;
      while (pos < n) {
        const unicode::ClassifiedChar d = unicode::classify_at(text, pos);
        if (d.cls != run_class) break;
        pos += d.length;
      }
      emit(text.substr(start, pos - start));
      continue;
    }

    // "\s+(?!\S)|\s+": a run of white space. When the run is followed by a non-space character and is
    // longer than one character, its last character is left over (it starts the next pre-token, e.g.
    // " word"), because \s+(?!\S) must end just before another space.
    size_t last_start = pos;
    while (pos < n) {
      const unicode::ClassifiedChar d = unicode::classify_at(text, pos);
      if (d.cls != CharClass::Space) break;
      last_start = pos;
      pos += d.length;
    }
    if (pos < n && last_start > start) pos = last_start;
    emit(text.substr(start, pos - start));
  }
}

std::vector<std::string> gpt2_pretokens(std::string_view text) {
  std::vector<std::string> pieces;
  split_gpt2_pretokens(text, [&](std::string_view piece) { pieces.emplace_back(piece); });
  return pieces;
}

// Why the split is exact. No pre-token holds a non-space character followed by a space: the pattern's
// alternatives are contractions (no space), " ?X+" (a space only first) and runs of white space. So the
// pre-tokens of the whole text have a boundary at pos. Left of pos the matcher never decides anything
// from the bytes at pos or after: a run of letters, numbers or "other" stops at the space either way,
// runs of white space left of pos end at a non-space character before pos, and no character decoded
// left of pos reaches pos (pos holds an ASCII byte, which is never a continuation byte). Right of pos
// the matcher starts afresh at a character boundary and never looks back.
bool is_gpt2_pretoken_boundary(std::string_view text, size_t pos) {
  if (pos == 0 || pos >= text.size()) return false;
  const auto at = static_cast<unsigned char>(text[pos]);
  if (at >= 0x80 || unicode::classify(at) != unicode::CharClass::Space) return false;
  // The character that ends at pos: a valid sequence of 1 to 4 bytes. (A lead byte is never a
  // continuation byte, so no character decoded from further left can cover it.)
  for (int length = 1; length <= 4 && static_cast<size_t>(length) <= pos; ++length) {
    const unicode::Utf8Char c = unicode::decode_utf8(text, pos - length);
    if (c.valid && c.length == length) return unicode::classify(c.codepoint) != unicode::CharClass::Space;
  }
  return false;
}

// ---- loading the vocabulary ---------------------------------------------------------------------------

Gpt2Tokenizer::Gpt2Tokenizer(const std::string& dir) {
  load_encoder(dir + "/encoder.json");
  load_merges(dir + "/vocab.bpe");
}

void Gpt2Tokenizer::load_encoder(const std::string& path) {
  std::ifstream file(path);
  T6_CHECK(file, "GPT-2 tokenizer: cannot open ", path, "; run scripts/fetch_gpt2_vocab.sh to install it");
  nlohmann::json encoder;
  try {
    encoder = nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(path, " is not valid JSON (", e.what(), "); re-run scripts/fetch_gpt2_vocab.sh"));
  }
  T6_CHECK(encoder.is_object() && !encoder.empty(), path,
           " must be a JSON object mapping token text to id; re-run scripts/fetch_gpt2_vocab.sh");

  token_bytes_.assign(encoder.size(), std::string());
  std::vector<bool> seen(encoder.size(), false);
  for (const auto& [spelled, id_json] : encoder.items()) {
    T6_CHECK(id_json.is_number_integer(), path, ": the id of token '", spelled, "' is not an integer");
    const int64_t id = id_json.get<int64_t>();
    // ids must be exactly 0..size-1 so that vocab_size() is the table size
    T6_CHECK(id >= 0 && id < static_cast<int64_t>(encoder.size()) && !seen[id], path, ": token '", spelled,
             "' has id ", id, ", but ids must be 0..", encoder.size() - 1, ", each used once");
    seen[id] = true;
    std::string bytes = token_text_to_bytes(spelled, path);
    id_of_bytes_[bytes] = static_cast<int32_t>(id);
    token_bytes_[id] = std::move(bytes);
  }

  for (int b = 0; b < 256; ++b) {
    const auto it = id_of_bytes_.find(std::string(1, static_cast<char>(b)));
    T6_CHECK(it != id_of_bytes_.end(), path, ": no token for the single byte ", b,
             "; a byte-level BPE vocabulary needs all 256");
    byte_ids_[b] = it->second;
  }
  // Not a special token in encode() (plain text "<|endoftext|>" is split like any other text); it is
  // only ever inserted as an id.
  if (const auto it = id_of_bytes_.find("<|endoftext|>"); it != id_of_bytes_.end()) end_of_text_ = it->second;
}

void Gpt2Tokenizer::load_merges(const std::string& path) {
  std::ifstream file(path);
  T6_CHECK(file, "GPT-2 tokenizer: cannot open ", path, "; run scripts/fetch_gpt2_vocab.sh to install it");
  std::string line;
  int64_t line_number = 0;
  int32_t rank = 0;
  while (std::getline(file, line)) {
    ++line_number;
    if (line.empty() || line.starts_with("#version")) continue;
    const size_t space = line.find(' ');
    T6_CHECK(space != std::string::npos && space > 0 && space + 1 < line.size() &&
                 line.find(' ', space + 1) == std::string::npos,
             path, ":", line_number, ": expected two tokens separated by one space, got '", line, "'");
    const std::string left = token_text_to_bytes(std::string_view(line).substr(0, space), path);
    const std::string right = token_text_to_bytes(std::string_view(line).substr(space + 1), path);
    const auto left_id = id_of_bytes_.find(left), right_id = id_of_bytes_.find(right),
               result_id = id_of_bytes_.find(left + right);
    T6_CHECK(left_id != id_of_bytes_.end() && right_id != id_of_bytes_.end() && result_id != id_of_bytes_.end(),
             path, ":", line_number, ": merge '", line, "' uses or makes a token missing from encoder.json; ",
             "the two files do not belong together (re-run scripts/fetch_gpt2_vocab.sh)");
    merges_.emplace(pair_key(left_id->second, right_id->second), Merge{rank++, result_id->second});
  }
  T6_CHECK(rank > 0, path, " has no merges; re-run scripts/fetch_gpt2_vocab.sh");
}

// ---- encoding and decoding --------------------------------------------------------------------------

std::vector<int32_t> Gpt2Tokenizer::apply_merges(std::string_view piece) const {
  std::vector<int32_t> word;
  word.reserve(piece.size());
  for (const char byte : piece) word.push_back(byte_ids_[static_cast<unsigned char>(byte)]);

  while (word.size() >= 2) {
    // the adjacent pair with the lowest merge rank
    const Merge* best = nullptr;
    int32_t best_left = 0, best_right = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      const auto it = merges_.find(pair_key(word[i], word[i + 1]));
      if (it != merges_.end() && (!best || it->second.rank < best->rank)) {
        best = &it->second, best_left = word[i], best_right = word[i + 1];
      }
    }
    if (!best) break;
    // merge every occurrence of that pair, scanning left to right (as GPT-2's bpe() does)
    size_t out = 0;
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == best_left && word[i + 1] == best_right) {
        word[out++] = best->result;
        i += 2;
      } else {
        word[out++] = word[i++];
      }
    }
    word.resize(out);
  }
  return word;
}

void Gpt2Tokenizer::encode_pretoken(std::string_view piece, std::vector<int32_t>& ids) const {
  if (piece.size() == 1) {  // nothing to merge
    ids.push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  CachePart& part = cache_[std::hash<std::string_view>{}(piece) % cache_.size()];
  const std::string key(piece);
  {
    const std::lock_guard<std::mutex> lock(part.mutex);
    if (const auto it = part.entries.find(key); it != part.entries.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> tokens = apply_merges(piece);
  ids.insert(ids.end(), tokens.begin(), tokens.end());
  const std::lock_guard<std::mutex> lock(part.mutex);
  if (part.entries.size() >= kMaxCacheEntries / cache_.size()) part.entries.clear();
  part.entries.emplace(key, std::move(tokens));
}

std::vector<int32_t> Gpt2Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3);  // English text averages about four bytes per token
  split_gpt2_pretokens(text, [&](std::string_view piece) { encode_pretoken(piece, ids); });
  return ids;
}

std::string Gpt2Tokenizer::decode_token(int32_t id) const {
  T6_CHECK(id >= 0 && id < vocab_size(), "gpt2 tokenizer: cannot decode token id ", id,
           ": the vocabulary has ids 0..", vocab_size() - 1, " (a padded model vocabulary has ids that are never real tokens)");
  return token_bytes_[id];
}

// ---- finding the files --------------------------------------------------------------------------------

std::vector<std::string> gpt2_vocab_dir_candidates() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("T6_GPT2_DIR"); env && *env) dirs.emplace_back(env);
  dirs.emplace_back("third_party/gpt2");
  std::error_code error;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) dirs.push_back((exe.parent_path().parent_path() / "third_party" / "gpt2").string());
#ifdef T6_SOURCE_DIR
  dirs.push_back(std::string(T6_SOURCE_DIR) + "/third_party/gpt2");
#endif
  return dirs;
}

bool has_gpt2_vocab_files(const std::string& dir) {
  std::error_code error;
  return std::filesystem::is_regular_file(dir + "/encoder.json", error) &&
         std::filesystem::is_regular_file(dir + "/vocab.bpe", error);
}

std::string find_gpt2_vocab_dir() {
  std::string tried;
  for (const std::string& dir : gpt2_vocab_dir_candidates()) {
    if (has_gpt2_vocab_files(dir)) return dir;
    tried += (tried.empty() ? "" : ", ") + dir;
  }
  throw Error(cat("GPT-2 tokenizer: encoder.json and vocab.bpe not found (looked in ", tried,
                  "); run scripts/fetch_gpt2_vocab.sh, or set T6_GPT2_DIR to the directory holding them"));
}

}  // namespace t6
