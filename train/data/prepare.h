// Text files -> token shards (DIR/train_000000.bin, ..., DIR/val_000000.bin, ...) and a summary,
// DIR/prepare.json: the logic behind `t6 prepare` (train/cli/prepare_command.cpp parses its flags).
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
};

// Tokenizes the inputs and writes both splits; shards of an earlier run that this one does not
// overwrite are deleted. Returns the summary also written to DIR/prepare.json ({"out_dir",
// "tokenizer", "vocab_size", "input_files", "train", "val"}, each split {"documents", "tokens",
// "text_bytes", "shards", "files"}; text_bytes: of the documents' text, separators not counted). Progress (on a terminal) and warnings go to `err`. Throws t6::Error.
nlohmann::json prepare_shards(const PrepareOptions& options, std::ostream& err);

}  // namespace t6
