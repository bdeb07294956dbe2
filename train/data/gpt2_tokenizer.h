// GPT-2's byte-level BPE tokenizer, read from OpenAI's encoder.json and vocab.bpe
// (scripts/fetch_gpt2_vocab.sh installs them into third_party/gpt2/).
//
// Encoding has two steps. First the text is split into "pre-tokens" by GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (words with their leading space, runs of digits, runs of punctuation, runs of white space). Then each
// pre-token, as bytes, starts as one token per byte and the ranked merges of vocab.bpe are applied, the
// lowest-ranked adjacent pair first, until no pair of neighbours has a merge. Merges never cross
// pre-token boundaries, so results are cached per pre-token.
#pragma once
#include <array>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "train/data/tokenizer.h"

namespace t6 {

class Gpt2Tokenizer : public Tokenizer {
 public:
  // Reads dir/encoder.json and dir/vocab.bpe; a missing or malformed file is a t6::Error naming it.
  explicit Gpt2Tokenizer(const std::string& dir);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode_token(int32_t id) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(token_bytes_.size()); }
  std::optional<int32_t> end_of_text() const override { return end_of_text_; }
  std::string name() const override { return "gpt2"; }

 private:
  struct Merge {
    int32_t rank;    // line number in vocab.bpe: lower merges first
    int32_t result;  // id of the merged token
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  void load_encoder(const std::string& path);
  void load_merges(const std::string& path);
  // Appends the BPE tokens of one pre-token to `ids`.
  void encode_pretoken(std::string_view piece, std::vector<int32_t>& ids) const;
  std::vector<int32_t> apply_merges(std::string_view piece) const;

  std::vector<std::string> token_bytes_;                  // id -> its bytes
  std::unordered_map<std::string, int32_t> id_of_bytes_;  // bytes -> id
  int32_t byte_ids_[256] = {};                            // single byte -> id
  std::unordered_map<uint64_t, Merge> merges_;            // (left id, right id) -> merge
  std::optional<int32_t> end_of_text_;

  // Pre-token -> tokens. Shared by concurrent encode() calls (t6 prepare's threads), hence a mutex per
  // part, and parts chosen by the pre-token's hash so that threads seldom wait for one another (one
  // mutex measured slower on 2 threads than on 1); each part is cleared when it grows past a bound,
  // so that encoding a huge corpus cannot use unbounded memory.
  struct CachePart {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>> entries;
  };
  mutable std::array<CachePart, 64> cache_;
};

// GPT-2's pre-tokenizer on its own: calls `emit` with each pre-token, in order. The pieces partition
// the text exactly, so concatenating them gives back the text. Bytes that are not valid UTF-8 count as
// one character each that is neither letter, number nor space.
void split_gpt2_pretokens(std::string_view text, const std::function<void(std::string_view)>& emit);
std::vector<std::string> gpt2_pretokens(std::string_view text);  // the same, collected (for tests)

// Whether `pos` is a pre-token boundary of `text` that does not depend on the rest of the text: an
// ASCII white-space byte at pos right after a valid UTF-8 character that is not white space. Then
// split_gpt2_pretokens(text) gives the pre-tokens of text[0, pos) followed by those of text[pos, n), so
// BPE (whose merges stay inside pre-tokens) encodes the two parts apart into the tokens of the whole:
// `t6 prepare` cuts long documents there to tokenize the parts in parallel.
bool is_gpt2_pretoken_boundary(std::string_view text, size_t pos);

// The places searched for encoder.json and vocab.bpe, in order: $T6_GPT2_DIR, ./third_party/gpt2,
// <directory of the t6 executable>/../third_party/gpt2 and, when the macro T6_SOURCE_DIR is defined,
// T6_SOURCE_DIR/third_party/gpt2.
std::vector<std::string> gpt2_vocab_dir_candidates();
// The first candidate that holds both files; a t6::Error listing the places tried (and how to fetch the
// files) when none does.
std::string find_gpt2_vocab_dir();
bool has_gpt2_vocab_files(const std::string& dir);

}  // namespace t6
