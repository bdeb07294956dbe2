// Text files -> token shards (DIR/train_000000.bin, ..., DIR/val_000000.bin, ...) and a summary,
// DIR/prepare.json: the logic behind `t6 prepare` (train/cli/prepare_command.cpp parses its flags).
//
// Streamed: the inputs are read a block at a time and the tokens written to shards as they come, so
// memory holds a few chunks of text per thread and one token buffer, whatever the corpus size (plus 8
// bytes per document, to place the validation split at the end). Long documents are cut into chunks
// at GPT-2 pre-token boundaries (see is_gpt2_pretoken_boundary), which the threads tokenize in
// parallel: the output is the same bytes for any chunk size and thread count.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "train/data/tokenizer.h"

namespace t6 {

struct PrepareOptions {
  std::vector<std::string> inputs;  // files, or directories standing for their regular files (sorted)
  TokenizerKind tokenizer = TokenizerKind::Byte;
  std::string out_dir;
  double val_fraction = 0.01;                // share of the tokens held out, from the last documents
  std::optional<std::string> doc_separator;  // a line that splits a file into documents
  int64_t shard_tokens = 100'000'000;        // tokens per shard file
  int threads = 0;                           // tokenizing threads; 0: every core
  int64_t chunk_bytes = 1 << 20;             // text per unit of tokenizing work (the read block, too)
};

// Tokenizes the inputs and writes both splits; shards of an earlier run that this one does not
// overwrite are deleted. Returns the summary also written to DIR/prepare.json ({"out_dir",
// "tokenizer", "vocab_size", "input_files", "train", "val"}, each split {"documents", "tokens",
// "text_bytes", "shards", "files"}; text_bytes: of the documents' text, separators not counted). Progress (when `err` is std::cerr: bytes and tokens per second, time left) and
// warnings go to `err`. Nothing is renamed into DIR before the inputs are all tokenized: a failure
// leaves the shards of an earlier run as they were. Throws t6::Error.
nlohmann::json prepare_shards(const PrepareOptions& options, std::ostream& err);

}  // namespace t6
