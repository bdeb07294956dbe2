// `t6 prepare`'s work, streamed: reads text files block by block, splits them into documents and the
// documents into chunks, tokenizes the chunks on all cores, and writes the tokens to shards as they come.
// At the end it holds out the last documents for validation and renames the shards into place.
#include "train/data/prepare.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <span>
#include <string_view>
#include <thread>

#include "core/error.h"
#include "train/data/gpt2_tokenizer.h"
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

// A piece of one document, the unit of work of a tokenizing thread.
struct TextChunk {
  std::string text;
  bool starts_document = false;
};

// Splits the bytes of the input files into documents (the whole file, or the runs of lines between
// separator lines; a line's trailing '\r' is ignored when comparing it with the separator; documents
// keep their newlines; empty ones are dropped) and cuts each document into chunks of about chunk_bytes.
//
// A cut falls only on a GPT-2 pre-token boundary (is_gpt2_pretoken_boundary): BPE merges never cross
// those, so the tokens of the chunks, concatenated, are the tokens of the whole document, for GPT-2 as
// for the byte tokenizer. A document without such a boundary for longer than chunk_bytes (one endless
// "word") stays in one chunk, in memory, until one comes.
class DocumentChunker {
 public:
  DocumentChunker(std::optional<std::string> separator, size_t chunk_bytes)
      : separator_(std::move(separator)), chunk_bytes_(chunk_bytes) {}

  // The next bytes of the current file; complete chunks are appended to `out`.
  void add(std::string_view bytes, std::vector<TextChunk>& out) {
    if (!separator_) return add_to_document(bytes, out);
    while (!bytes.empty()) {
      const size_t newline = bytes.find('\n');
      const size_t length = newline == std::string_view::npos ? bytes.size() : newline + 1;
      add_to_line(bytes.substr(0, length), newline != std::string_view::npos, out);
      bytes.remove_prefix(length);
    }
  }

  // The end of the current file, which ends its last line and document.
  void end_file(std::vector<TextChunk>& out) {
    if (!line_.empty()) end_line(out);
    line_is_text_ = false;
    end_document(out);
  }

 private:
  // line_ holds the start of the current line for as long as it may still be a separator line.
  void add_to_line(std::string_view part, bool ends_line, std::vector<TextChunk>& out) {
    if (line_is_text_) {
      add_to_document(part, out);
    } else {
      line_ += part;
      if (ends_line) {
        end_line(out);
      } else if (line_.size() > separator_->size() + 1) {  // longer than "separator\r": text
        add_to_document(line_, out);
        line_.clear();
        line_is_text_ = true;
      }
    }
    if (ends_line) line_is_text_ = false;
  }

  void end_line(std::vector<TextChunk>& out) {
    std::string_view line = line_;
    if (line.ends_with('\n')) line.remove_suffix(1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line == *separator_) {
      end_document(out);
    } else {
      add_to_document(line_, out);
    }
    line_.clear();
  }

  void add_to_document(std::string_view bytes, std::vector<TextChunk>& out) {
    document_ += bytes;
    if (document_.size() < chunk_bytes_) return;
    // The last boundary in the text: positions before searched_ were searched before.
    for (size_t pos = document_.size() - 1; pos >= std::max<size_t>(searched_, 1); --pos) {
      if (!is_gpt2_pretoken_boundary(document_, pos)) continue;
      emit(document_.substr(0, pos), out);
      document_.erase(0, pos);
      searched_ = document_.size();
      return;
    }
    searched_ = document_.size();
  }

  void end_document(std::vector<TextChunk>& out) {
    if (!document_.empty()) emit(std::move(document_), out);
    document_.clear();
    searched_ = 0;
    document_started_ = false;
  }

  void emit(std::string text, std::vector<TextChunk>& out) {
    out.push_back({std::move(text), !document_started_});
    document_started_ = true;
  }

  std::optional<std::string> separator_;
  size_t chunk_bytes_;
  std::string line_;
  bool line_is_text_ = false;
  std::string document_;         // the current document's text not yet emitted
  size_t searched_ = 0;          // positions of document_ below this are not boundaries
  bool document_started_ = false;  // a chunk of the current document has been emitted
};

// Tokenizes every chunk on `threads` threads (the calling one included); result i is chunk i's tokens.
std::vector<std::vector<int32_t>> tokenize_chunks(const std::vector<TextChunk>& chunks, const Tokenizer& tokenizer,
                                                  int threads) {
  std::vector<std::vector<int32_t>> tokens(chunks.size());
  std::atomic<size_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  const auto work = [&] {
    for (size_t i; (i = next++) < chunks.size();) {
      try {
        tokens[i] = tokenizer.encode(chunks[i].text);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(failure_mutex);
        failure = std::current_exception();
      }
    }
  };
  std::vector<std::thread> helpers;
  for (int t = 1; t < std::min<int>(threads, static_cast<int>(chunks.size())); ++t) helpers.emplace_back(work);
  work();
  for (std::thread& helper : helpers) helper.join();
  if (failure) std::rethrow_exception(failure);
  return tokens;
}

// Progress on stderr while tokenizing: bytes read, bytes and tokens per second, and the time left. On
// a terminal the line is redrawn a few times a second; in a log, a line every 30 seconds. At the end,
// one line with the totals. Silent when `err` is not std::cerr (a caller capturing the output).
class Progress {
 public:
  Progress(std::ostream& err, int64_t total_bytes)
      : err_(err),
        total_bytes_(std::max<int64_t>(total_bytes, 1)),
        enabled_(&err == &std::cerr),
        terminal_(enabled_ && ::isatty(STDERR_FILENO)) {}

  void update(int64_t bytes, int64_t tokens) {
    const double seconds = elapsed();
    if (!enabled_ || seconds < shown_ + (terminal_ ? 0.25 : 30.0)) return;
    shown_ = seconds;
    const double rate = static_cast<double>(bytes) / seconds;
    const double left = rate > 0 ? static_cast<double>(total_bytes_ - bytes) / rate : 0.0;
    char line[200];
    std::snprintf(line, sizeof line, "tokenizing: %.1f%% of %.1f MB, %.2f MB/s, %.3gM tokens/s, ETA %s",
                  100.0 * static_cast<double>(bytes) / static_cast<double>(total_bytes_), total_bytes_ / 1e6,
                  rate / 1e6, static_cast<double>(tokens) / seconds / 1e6, duration(left).c_str());
    err_ << (terminal_ ? "\r\033[K" : "") << line << (terminal_ ? "" : "\n") << std::flush;
  }

  void finish(int64_t bytes, int64_t tokens) {
    if (!enabled_) return;
    const double seconds = std::max(elapsed(), 1e-9);
    char line[200];
    std::snprintf(line, sizeof line, "tokenized %.1f MB into %lld tokens in %s: %.2f MB/s, %.3gM tokens/s\n",
                  static_cast<double>(bytes) / 1e6, static_cast<long long>(tokens), duration(seconds).c_str(),
                  static_cast<double>(bytes) / seconds / 1e6, static_cast<double>(tokens) / seconds / 1e6);
    err_ << (terminal_ && shown_ > 0 ? "\r\033[K" : "") << line << std::flush;
  }

 private:
  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  static std::string duration(double seconds) {
    const auto s = static_cast<long long>(seconds + 0.5);
    char text[32];
    if (s >= 3600) {
      std::snprintf(text, sizeof text, "%lldh%02lldm", s / 3600, s / 60 % 60);
    } else if (s >= 60) {
      std::snprintf(text, sizeof text, "%lldm%02llds", s / 60, s % 60);
    } else {
      std::snprintf(text, sizeof text, "%.1fs", seconds);
    }
    return text;
  }

  std::ostream& err_;
  int64_t total_bytes_;
  bool enabled_, terminal_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  double shown_ = 0.0;  // when the last line was shown, in seconds from the start
};

// The tokens of all documents in input order, each document after its separator tokens (end-of-text
// before every document, or, for a tokenizer without one, a newline between documents), written to
// temporary shard files of shard_tokens tokens as they come: piece i is the first draft of train
// shard i. split() then cuts the stream into the train and val splits.
class TokenStream {
 public:
  TokenStream(fs::path dir, int64_t shard_tokens, std::vector<uint16_t> separator, bool separator_before_first)
      : dir_(std::move(dir)),
        shard_tokens_(shard_tokens),
        separator_(std::move(separator)),
        separator_before_first_(separator_before_first) {}

  void begin_document() {
    document_starts_.push_back(size_);
    document_text_bytes_.push_back(0);
    if (separator_before_first_ || document_starts_.size() > 1) append(separator_);
  }

  void append(std::span<const uint16_t> tokens) {
    while (!tokens.empty()) {
      if (pieces_.empty() || pieces_.back()->size() == shard_tokens_) {
        if (!pieces_.empty()) pieces_.back()->finish();
        pieces_.push_back(std::make_unique<TokenShardWriter>(shard_path(dir_, "train", pieces_.size())));
      }
      const auto n = static_cast<size_t>(std::min<int64_t>(shard_tokens_ - pieces_.back()->size(),
                                                           static_cast<int64_t>(tokens.size())));
      pieces_.back()->append(tokens.first(n));
      tokens = tokens.subspan(n);
      size_ += static_cast<int64_t>(n);
    }
  }

  // The current document's text grew by `bytes` (for bits per byte of a model on the split).
  void count_text(size_t bytes) { document_text_bytes_.back() += static_cast<int64_t>(bytes); }

  int64_t size() const { return size_; }
  size_t documents() const { return document_starts_.size(); }

  // The tokens of document d, without its separator tokens.
  int64_t document_tokens(size_t d) const {
    const int64_t end = d + 1 < documents() ? document_starts_[d + 1] : size_;
    return end - document_starts_[d] - separator_tokens(d);
  }

  // The train split is the stream up to document `first_val`, the val split the stream from there on,
  // less the newline that joined the two; both are cut into shards of shard_tokens. Renames the train
  // shards into place, writes the val shards and returns the summary of each split.
  std::pair<nlohmann::json, nlohmann::json> split(size_t first_val, int64_t vocab_size) {
    if (!pieces_.empty()) pieces_.back()->finish();
    const bool has_val = first_val < documents();
    const int64_t train_end = has_val ? document_starts_[first_val] : size_;
    const int64_t val_begin = has_val ? train_end + (separator_before_first_ ? 0 : separator_tokens(first_val)) : size_;

    std::vector<std::unique_ptr<TokenShardWriter>> val;  // written before the train pieces are cut
    std::vector<int32_t> buffer;
    for (int64_t at = val_begin; at < size_;) {
      const auto piece = static_cast<size_t>(at / shard_tokens_);
      const MappedTokenShard source(pieces_[piece]->temporary_path());
      const int64_t offset = at - static_cast<int64_t>(piece) * shard_tokens_;
      for (int64_t i = offset; i < source.size();) {
        if (val.empty() || val.back()->size() == shard_tokens_) {
          if (!val.empty()) val.back()->finish();
          val.push_back(std::make_unique<TokenShardWriter>(shard_path(dir_, "val", val.size())));
        }
        const int64_t n = std::min({source.size() - i, shard_tokens_ - val.back()->size(), int64_t{1} << 20});
        buffer.resize(static_cast<size_t>(n));
        source.copy_tokens(i, n, vocab_size, buffer.data());
        val.back()->append(std::vector<uint16_t>(buffer.begin(), buffer.end()));
        i += n;
      }
      at = static_cast<int64_t>(piece + 1) * shard_tokens_;
    }

    const auto train_shards = static_cast<size_t>((train_end + shard_tokens_ - 1) / shard_tokens_);
    if (train_shards > 0) pieces_[train_shards - 1]->keep_first(train_end - static_cast<int64_t>(train_shards - 1) * shard_tokens_);
    nlohmann::json train_files = nlohmann::json::array(), val_files = nlohmann::json::array();
    for (size_t i = 0; i < train_shards; ++i) train_files.push_back(pieces_[i]->commit());
    for (auto& shard : val) val_files.push_back(shard->commit());
    pieces_.clear();  // removes the pieces past the train split
    const auto summary = [this](size_t first, size_t last, int64_t tokens, const nlohmann::json& files) {
      const int64_t text_bytes = std::accumulate(document_text_bytes_.begin() + static_cast<ptrdiff_t>(first),
                                                 document_text_bytes_.begin() + static_cast<ptrdiff_t>(last), int64_t{0});
      return nlohmann::json{{"documents", last - first}, {"tokens", tokens},     {"text_bytes", text_bytes},
                            {"shards", files.size()},    {"files", files}};
    };
    return {summary(0, first_val, train_end, train_files),
            summary(first_val, documents(), size_ - val_begin, val_files)};
  }

 private:
  int64_t separator_tokens(size_t d) const {
    return separator_before_first_ || d > 0 ? static_cast<int64_t>(separator_.size()) : 0;
  }
  static std::string shard_path(const fs::path& dir, const char* split, size_t index) {
    char name[32];
    std::snprintf(name, sizeof name, "%s_%06zu.bin", split, index);
    return (dir / name).string();
  }

  fs::path dir_;
  int64_t shard_tokens_;
  std::vector<uint16_t> separator_;
  bool separator_before_first_;
  std::vector<std::unique_ptr<TokenShardWriter>> pieces_;
  std::vector<int64_t> document_starts_;  // where each document's separator tokens begin
  std::vector<int64_t> document_text_bytes_;  // the bytes of each document's text, separators not counted
  int64_t size_ = 0;
};

// How many documents, from the end, form the validation split (see the help text).
size_t count_val_documents(const TokenStream& stream, double val_fraction) {
  const size_t n = stream.documents();
  if (val_fraction <= 0.0 || n < 2) return 0;
  int64_t total = 0;
  for (size_t d = 0; d < n; ++d) total += stream.document_tokens(d);
  const double target = val_fraction * static_cast<double>(total);
  size_t taken = 0;
  int64_t val_tokens = 0;
  while (taken < n - 1 && (taken == 0 || static_cast<double>(val_tokens) < target)) {
    ++taken;
    val_tokens += stream.document_tokens(n - taken);
  }
  return taken;
}

std::vector<uint16_t> to_shard_tokens(const std::vector<int32_t>& ids) { return {ids.begin(), ids.end()}; }

// Reads, chunks and tokenizes every input file into `stream`, a batch of chunks at a time (a few per
// thread, so that the threads stay busy while the batch's tokens are appended in order).
void tokenize_inputs(const std::vector<std::string>& files, const PrepareOptions& options, const Tokenizer& tokenizer,
                     TokenStream& stream, std::ostream& err) {
  int64_t total_bytes = 0;
  for (const std::string& file : files) total_bytes += static_cast<int64_t>(fs::file_size(file));
  Progress progress(err, total_bytes);
  const int threads = options.threads > 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  const auto chunk_bytes = static_cast<size_t>(options.chunk_bytes);
  DocumentChunker chunker(options.doc_separator, chunk_bytes);
  std::vector<TextChunk> chunks;
  int64_t bytes_read = 0;
  const auto tokenize = [&] {
    const std::vector<std::vector<int32_t>> tokens = tokenize_chunks(chunks, tokenizer, threads);
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (chunks[i].starts_document) stream.begin_document();
      stream.count_text(chunks[i].text.size());
      stream.append(to_shard_tokens(tokens[i]));
    }
    chunks.clear();
    progress.update(bytes_read, stream.size());
  };

  std::string block(chunk_bytes, '\0');
  for (const std::string& path : files) {
    std::ifstream file(path, std::ios::binary);
    T6_CHECK(file, "cannot open input '", path, "'");
    while (file) {
      file.read(block.data(), static_cast<std::streamsize>(block.size()));
      T6_CHECK(!file.bad(), "cannot read input '", path, "'");
      bytes_read += file.gcount();
      chunker.add(std::string_view(block.data(), static_cast<size_t>(file.gcount())), chunks);
      if (chunks.size() >= static_cast<size_t>(4 * threads)) tokenize();
    }
    chunker.end_file(chunks);
  }
  tokenize();
  progress.finish(bytes_read, stream.size());
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

}  // namespace

nlohmann::json prepare_shards(const PrepareOptions& options, std::ostream& err) {
  const std::vector<std::string> files = expand_inputs(options.inputs);
  check_not_in_output(files, options.out_dir);
  const std::unique_ptr<Tokenizer> tokenizer = make_tokenizer(options.tokenizer);
  T6_CHECK(tokenizer->vocab_size() <= 65536, "tokenizer ", tokenizer->name(), " has ", tokenizer->vocab_size(),
           " ids, more than the uint16 tokens of a shard can hold");
  T6_CHECK(options.chunk_bytes >= 1, "prepare: chunk_bytes must be at least 1, got ", options.chunk_bytes);

  // Fail on an unusable output directory before spending time on tokenizing.
  std::error_code error;
  fs::create_directories(options.out_dir, error);
  T6_CHECK(!error && fs::is_directory(options.out_dir), "cannot create output directory '", options.out_dir,
           "': ", error ? error.message() : "a file of that name exists");
  T6_CHECK(::access(options.out_dir.c_str(), W_OK) == 0, "output directory '", options.out_dir,
           "' is not writable");
  for (const std::string& name : remove_stale_temporaries(options.out_dir))
    err << "note: removed " << name << ", left in " << options.out_dir << " by a run that was killed\n";

  // GPT-2 style: end-of-text before each document; without such a token, a newline between documents.
  const std::optional<int32_t> end_of_text = tokenizer->end_of_text();
  TokenStream stream(options.out_dir, options.shard_tokens,
                     to_shard_tokens(end_of_text ? std::vector<int32_t>{*end_of_text} : tokenizer->encode("\n")),
                     end_of_text.has_value());
  tokenize_inputs(files, options, *tokenizer, stream, err);
  T6_CHECK(stream.documents() > 0, "the inputs hold no text (every document is empty)");
  const size_t n_val = count_val_documents(stream, options.val_fraction);
  if (options.val_fraction > 0 && n_val == 0)
    err << "warning: a single document cannot be split, so there is no validation split; "
           "use --doc-separator or more input files\n";

  const auto [train, val] = stream.split(stream.documents() - n_val, tokenizer->vocab_size());
  std::vector<std::string> written = train.at("files").get<std::vector<std::string>>();
  for (const auto& file : val.at("files")) written.push_back(file.get<std::string>());
  if (const int removed = remove_stale_shards(options.out_dir, written))
    err << "removed " << removed << " shard(s) left by an earlier run in " << options.out_dir << "\n";

  const nlohmann::json summary = {{"out_dir", options.out_dir},
                                  {"tokenizer", tokenizer->name()},
                                  {"vocab_size", tokenizer->vocab_size()},
                                  {"input_files", files.size()},
                                  {"train", train},
                                  {"val", val}};
  write_file_atomically((fs::path(options.out_dir) / "prepare.json").string(), summary.dump(2) + "\n");
  return summary;
}

}  // namespace t6
