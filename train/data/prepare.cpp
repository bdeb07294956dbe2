// `t6 prepare`'s work: reads text files, splits them into documents, tokenizes them, holds out the
// last documents for validation and writes both splits as token shards.
#include "train/data/prepare.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string_view>

#include "core/error.h"
#include "train/data/token_shards.h"
#include "train/data/tokenizer.h"
#include "train/io/atomic_file.h"

namespace t6 {

namespace fs = std::filesystem;

namespace {

// Input paths -> files: a directory stands for its regular files, sorted by name.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const std::string& input : inputs) {
    std::error_code error;
    const fs::file_status status = fs::status(input, error);
    T6_CHECK(fs::exists(status), "input '", input, "' does not exist");
    if (fs::is_regular_file(status)) {
      files.push_back(input);
      continue;
    }
    T6_CHECK(fs::is_directory(status), "input '", input, "' is neither a regular file nor a directory");
    std::vector<std::string> found;
    for (const fs::directory_entry& entry : fs::directory_iterator(input))
      if (entry.is_regular_file()) found.push_back(entry.path().string());
    T6_CHECK(!found.empty(), "input directory '", input, "' has no regular files");
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

// Shards and the summary are written into out_dir: reading anything from there as text would feed a
// run's own output (or an earlier run's) back into the corpus.
void check_not_in_output(const std::vector<std::string>& files, const std::string& out_dir) {
  std::error_code error;
  const fs::path out = fs::weakly_canonical(out_dir, error);
  for (const std::string& file : files) {
    const fs::path parent = fs::weakly_canonical(file, error).parent_path();
    T6_CHECK(parent != out, "input '", file, "' lies in the output directory '", out_dir,
             "', where prepare writes its shards; move the text elsewhere or choose another --out");
  }
}

std::string read_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  T6_CHECK(file, "cannot open input '", path, "'");
  std::ostringstream text;
  text << file.rdbuf();
  T6_CHECK(!file.bad(), "cannot read input '", path, "'");
  return std::move(text).str();
}

// A file's documents: the whole file, or the runs of lines between separator lines (a line's trailing
// '\r' is ignored when comparing it with the separator). Documents keep their newlines; empty ones are
// dropped.
std::vector<std::string_view> split_documents(std::string_view text, const std::optional<std::string>& separator) {
  std::vector<std::string_view> documents;
  const auto add = [&](size_t begin, size_t end) {
    if (end > begin) documents.push_back(text.substr(begin, end - begin));
  };
  if (!separator) {
    add(0, text.size());
    return documents;
  }
  size_t document_begin = 0;
  for (size_t line_begin = 0; line_begin < text.size();) {
    const size_t newline = text.find('\n', line_begin);
    const size_t line_end = newline == std::string_view::npos ? text.size() : newline;
    const size_t next_line = newline == std::string_view::npos ? text.size() : newline + 1;
    std::string_view line = text.substr(line_begin, line_end - line_begin);
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line == *separator) {
      add(document_begin, line_begin);
      document_begin = next_line;
    }
    line_begin = next_line;
  }
  add(document_begin, text.size());
  return documents;
}

// All documents, tokenized, stored back to back: document d is tokens[starts[d] .. starts[d + 1]).
struct TokenizedDocuments {
  std::vector<uint16_t> tokens;
  std::vector<size_t> starts{0};
  std::vector<size_t> text_bytes;  // of each document's text: for bits per byte of a model on the split
  size_t count() const { return starts.size() - 1; }
  int64_t bytes_of(size_t first, size_t last) const {
    int64_t sum = 0;
    for (size_t d = first; d < last; ++d) sum += static_cast<int64_t>(text_bytes[d]);
    return sum;
  }
  size_t size(size_t d) const { return starts[d + 1] - starts[d]; }
};

// A progress line on a terminal, redrawn when the percentage changes; silent when `err` is not one.
class ProgressLine {
 public:
  ProgressLine(std::ostream& err, int64_t total_bytes)
      : err_(err),
        total_(std::max<int64_t>(total_bytes, 1)),
        enabled_(&err == &std::cerr && ::isatty(STDERR_FILENO)) {}
  void update(int64_t done_bytes) {
    const int64_t percent = 100 * done_bytes / total_;
    if (!enabled_ || percent == shown_) return;
    shown_ = percent;
    const int width = 30, filled = static_cast<int>(width * percent / 100);
    err_ << "\rtokenizing [" << std::string(filled, '#') << std::string(width - filled, ' ') << "] " << percent
         << "% of " << total_ / 1'000'000.0 << " MB" << std::flush;
  }
  void finish() {
    if (enabled_ && shown_ >= 0) err_ << "\r\033[K" << std::flush;  // erase the line
  }

 private:
  std::ostream& err_;
  int64_t total_;
  bool enabled_;
  int64_t shown_ = -1;
};

TokenizedDocuments tokenize_inputs(const std::vector<std::string>& files, const PrepareOptions& options,
                                   const Tokenizer& tokenizer, std::ostream& err) {
  int64_t total_bytes = 0;
  for (const std::string& file : files) total_bytes += static_cast<int64_t>(fs::file_size(file));
  ProgressLine progress(err, total_bytes);
  TokenizedDocuments documents;
  int64_t done_bytes = 0;
  for (const std::string& file : files) {
    const std::string text = read_file(file);
    for (const std::string_view document : split_documents(text, options.doc_separator)) {
      for (const int32_t id : tokenizer.encode(document)) documents.tokens.push_back(static_cast<uint16_t>(id));
      documents.starts.push_back(documents.tokens.size());
      documents.text_bytes.push_back(document.size());
      progress.update(done_bytes + (document.data() + document.size() - text.data()));
    }
    done_bytes += static_cast<int64_t>(text.size());
  }
  progress.finish();
  return documents;
}

// How many documents, from the end, form the validation split (see the help text).
size_t count_val_documents(const TokenizedDocuments& documents, double val_fraction) {
  const size_t n = documents.count();
  if (val_fraction <= 0.0 || n < 2) return 0;
  const double target = val_fraction * static_cast<double>(documents.tokens.size());
  size_t taken = 0, val_tokens = 0;
  while (taken < n - 1 && (taken == 0 || static_cast<double>(val_tokens) < target)) {
    ++taken;
    val_tokens += documents.size(n - taken);
  }
  return taken;
}

// Collects one split's token stream and cuts it into shard files of at most shard_tokens tokens.
class ShardSink {
 public:
  ShardSink(fs::path dir, std::string split, int64_t shard_tokens)
      : dir_(std::move(dir)), split_(std::move(split)), shard_tokens_(static_cast<size_t>(shard_tokens)) {}
  void add(uint16_t token) {
    buffer_.push_back(token);
    ++tokens_;
    if (buffer_.size() == shard_tokens_) flush();
  }
  void finish() {
    if (!buffer_.empty()) flush();
  }
  const std::vector<std::string>& files() const { return files_; }
  int64_t tokens() const { return tokens_; }

 private:
  void flush() {
    char name[32];
    std::snprintf(name, sizeof name, "%s_%06zu.bin", split_.c_str(), files_.size());
    files_.push_back((dir_ / name).string());
    write_token_shard(files_.back(), buffer_);
    buffer_.clear();
  }
  fs::path dir_;
  std::string split_;
  size_t shard_tokens_;
  std::vector<uint16_t> buffer_;
  std::vector<std::string> files_;
  int64_t tokens_ = 0;
};

// Writes documents [first, last) as one split. GPT-2 style: end-of-text before each document; without
// such a token, a newline between documents.
ShardSink write_split(const std::string& split, const TokenizedDocuments& documents, size_t first, size_t last,
                      const Tokenizer& tokenizer, const PrepareOptions& options) {
  const std::optional<int32_t> end_of_text = tokenizer.end_of_text();
  const std::vector<int32_t> newline = tokenizer.encode("\n");
  ShardSink sink(options.out_dir, split, options.shard_tokens);
  for (size_t d = first; d < last; ++d) {
    if (end_of_text) {
      sink.add(static_cast<uint16_t>(*end_of_text));
    } else if (d > first) {
      for (const int32_t id : newline) sink.add(static_cast<uint16_t>(id));
    }
    for (size_t i = documents.starts[d]; i < documents.starts[d + 1]; ++i) sink.add(documents.tokens[i]);
  }
  sink.finish();
  return sink;
}

// Deletes DIR/<split>_NNNNNN.bin files that this run did not write: they belong to an earlier run
// with more shards and would otherwise be picked up by a train_*.bin pattern.
int remove_stale_shards(const fs::path& dir, const std::vector<std::string>& written) {
  std::vector<std::string> written_names;
  for (const std::string& path : written) written_names.push_back(fs::path(path).filename().string());
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  int removed = 0;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const std::string_view prefix = name.starts_with("train_") ? "train_" : "val_";
    const bool shard_name = name.size() == prefix.size() + 10 && name.starts_with(prefix) && name.ends_with(".bin") &&
                            std::all_of(name.begin() + prefix.size(), name.end() - 4, is_digit);
    if (shard_name && std::find(written_names.begin(), written_names.end(), name) == written_names.end()) {
      fs::remove(entry.path());
      ++removed;
    }
  }
  return removed;
}

nlohmann::json split_summary(const ShardSink& sink, size_t documents, int64_t text_bytes) {
  return {{"documents", documents},
          {"tokens", sink.tokens()},
          {"text_bytes", text_bytes},
          {"shards", sink.files().size()},
          {"files", sink.files()}};
}

}  // namespace

nlohmann::json prepare_shards(const PrepareOptions& options, std::ostream& err) {
  const std::vector<std::string> files = expand_inputs(options.inputs);
  check_not_in_output(files, options.out_dir);
  const std::unique_ptr<Tokenizer> tokenizer = make_tokenizer(options.tokenizer);
  T6_CHECK(tokenizer->vocab_size() <= 65536, "tokenizer ", tokenizer->name(), " has ", tokenizer->vocab_size(),
           " ids, more than the uint16 tokens of a shard can hold");

  // Fail on an unusable output directory before spending time on tokenizing.
  std::error_code error;
  fs::create_directories(options.out_dir, error);
  T6_CHECK(!error && fs::is_directory(options.out_dir), "cannot create output directory '", options.out_dir,
           "': ", error ? error.message() : "a file of that name exists");
  T6_CHECK(::access(options.out_dir.c_str(), W_OK) == 0, "output directory '", options.out_dir,
           "' is not writable");

  const TokenizedDocuments documents = tokenize_inputs(files, options, *tokenizer, err);
  T6_CHECK(documents.count() > 0, "the inputs hold no text (every document is empty)");
  const size_t n_val = count_val_documents(documents, options.val_fraction);
  if (options.val_fraction > 0 && n_val == 0)
    err << "warning: a single document cannot be split, so there is no validation split; "
           "use --doc-separator or more input files\n";

  const size_t n_train = documents.count() - n_val;
  const ShardSink train = write_split("train", documents, 0, n_train, *tokenizer, options);
  const ShardSink val = write_split("val", documents, n_train, documents.count(), *tokenizer, options);
  std::vector<std::string> written = train.files();
  written.insert(written.end(), val.files().begin(), val.files().end());
  if (const int removed = remove_stale_shards(options.out_dir, written))
    err << "removed " << removed << " shard(s) left by an earlier run in " << options.out_dir << "\n";

  const nlohmann::json summary = {{"out_dir", options.out_dir},
                                  {"tokenizer", tokenizer->name()},
                                  {"vocab_size", tokenizer->vocab_size()},
                                  {"input_files", files.size()},
                                  {"train", split_summary(train, n_train, documents.bytes_of(0, n_train))},
                                  {"val", split_summary(val, n_val, documents.bytes_of(n_train, documents.count()))}};
  write_file_atomically((fs::path(options.out_dir) / "prepare.json").string(), summary.dump(2) + "\n");

  return summary;
}

}  // namespace t6
