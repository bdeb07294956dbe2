// The batch loader: shards -> one token array -> (B,T) windows in sequential or shuffled order.
#include "train/data/batch_loader.h"

#include <glob.h>

#include <algorithm>
#include <numeric>
#include <utility>

#include "core/error.h"
#include "core/random.h"
#include "train/data/token_shards.h"

namespace t6 {

namespace {

// The files matching a glob(3) pattern, sorted by name.
std::vector<std::string> glob_files(const std::string& pattern) {
  glob_t matches{};
  const int status = ::glob(pattern.c_str(), 0, nullptr, &matches);
  std::vector<std::string> files;
  if (status == 0) files.assign(matches.gl_pathv, matches.gl_pathv + matches.gl_pathc);
  ::globfree(&matches);
  T6_CHECK(status != GLOB_NOMATCH, "no token shards match '", pattern,
           "'; check the path, or create shards with `t6 prepare --out DIR` (they are DIR/train_*.bin and "
           "DIR/val_*.bin)");
  T6_CHECK(status == 0, "cannot list the files matching '", pattern, "' (glob failed with code ", status, ")");
  std::sort(files.begin(), files.end());  // byte order, whatever the locale
  return files;
}

// Reads one key of a saved loader state as type T, with an error that names the key.
template <class T>
T state_value(const nlohmann::json& state, const char* key) {
  try {
    return state.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(cat("batch loader state: key '", key, "' is missing or has the wrong type in ", state.dump()));
  }
}

}  // namespace

BatchLoader::BatchLoader(const std::string& pattern, int64_t B, int64_t T, int64_t vocab_size, bool shuffle,
                         uint64_t seed, RankSlice slice)
    : pattern_(pattern), B_(B), T_(T), slice_(slice), shuffle_(shuffle), seed_(seed) {
  T6_CHECK(B >= 1 && T >= 1, "batch loader: B and T must be at least 1, got B=", B, " T=", T);
  T6_CHECK(vocab_size >= 1, "batch loader: vocab_size must be at least 1, got ", vocab_size);
  T6_CHECK(slice.world_size >= 1 && slice.rank >= 0 && slice.rank < slice.world_size,
           "batch loader: rank ", slice.rank, " of ", slice.world_size, " processes does not exist; the rank must be "
           "from 0 to world_size - 1");
  files_ = glob_files(pattern);
  for (const std::string& file : files_) {
    const std::vector<uint16_t> shard = read_token_shard(file, vocab_size);
    tokens_.insert(tokens_.end(), shard.begin(), shard.end());
  }
  // A window needs G·T + 1 tokens (the targets run one past the inputs), and windows start every G·T.
  const int64_t G = global_batch();
  num_windows_ = tokens_.empty() ? 0 : (total_tokens() - 1) / (G * T);
  T6_CHECK(num_windows_ > 0, "data '", pattern, "' (", files_.size(), " shard(s), ", total_tokens(),
           " tokens) is too small for one batch of B=", G, " by T=", T, ", which needs B*T+1 = ", G * T + 1,
           " tokens", slice.world_size > 1 ? cat(" (B is the global batch: ", slice.world_size, " ranks of ", B, ")") : "",
           "; use a smaller B or T, or more data");
  start_epoch(0);
}

void BatchLoader::start_epoch(int64_t epoch) {
  epoch_ = epoch;
  index_ = 0;
  if (!shuffle_) return;
  // Each epoch draws its order from its own generator, seeded from (seed, epoch): resuming needs only
  // those two numbers, not the permutation itself. The multiplier scatters consecutive epochs.
  Generator gen(seed_ ^ (static_cast<uint64_t>(epoch) * 0xD1B54A32D192ED03ull));
  order_.resize(static_cast<size_t>(num_windows_));
  std::iota(order_.begin(), order_.end(), int64_t{0});
  for (int64_t i = num_windows_ - 1; i > 0; --i) {  // Fisher–Yates
    const auto j = static_cast<int64_t>(gen.below(static_cast<uint64_t>(i + 1)));
    std::swap(order_[i], order_[j]);
  }
}

void BatchLoader::next_batch(std::vector<int32_t>& inputs, std::vector<int32_t>& targets) {
  const int64_t window = shuffle_ ? order_[index_] : index_;
  read_window(window, inputs, targets);
  if (++index_ == num_windows_) start_epoch(epoch_ + 1);
}

void BatchLoader::read_window(int64_t w, std::vector<int32_t>& inputs, std::vector<int32_t>& targets) const {
  T6_CHECK(w >= 0 && w < num_windows_, "batch loader: window ", w, " does not exist; '", pattern_, "' has ",
           num_windows_, " windows of B=", global_batch(), " by T=", T_);
  const size_t size = static_cast<size_t>(B_ * T_);
  // This rank's rows: B·T + 1 tokens, r·B rows into the window.
  const uint16_t* window = tokens_.data() + (w * global_batch() + slice_.rank * B_) * T_;
  inputs.resize(size);
  targets.resize(size);
  for (size_t i = 0; i < size; ++i) {
    inputs[i] = window[i];
    targets[i] = window[i + 1];
  }
}

int64_t BatchLoader::eval_batch_count(int64_t requested) const {
  return requested <= 0 ? num_windows_ : std::min(requested, num_windows_);
}

nlohmann::json BatchLoader::state() const {
  return {{"epoch", epoch_}, {"index", index_}, {"seed", seed_}, {"shuffle", shuffle_},
          {"windows", num_windows_}, {"B", global_batch()}, {"T", T_}};
}

void BatchLoader::restore(const nlohmann::json& state) {
  const auto epoch = state_value<int64_t>(state, "epoch");
  const auto index = state_value<int64_t>(state, "index");
  const auto seed = state_value<uint64_t>(state, "seed");
  const auto shuffle = state_value<bool>(state, "shuffle");
  const auto windows = state_value<int64_t>(state, "windows");
  const auto B = state_value<int64_t>(state, "B");
  const auto T = state_value<int64_t>(state, "T");
  const auto describe = [](uint64_t s, bool shuffled, int64_t b, int64_t t, int64_t n) {
    return cat("seed ", s, ", shuffle ", shuffled ? "on" : "off", ", B=", b, ", T=", t, ", ", n, " windows");
  };
  // B is the global batch: a run saved by N ranks of batch B continues on M ranks of batch B' = N·B/M.
  T6_CHECK(seed == seed_ && shuffle == shuffle_ && B == global_batch() && T == T_ && windows == num_windows_,
           "batch loader: the saved position (", describe(seed, shuffle, B, T, windows),
           ") does not match this loader (", describe(seed_, shuffle_, global_batch(), T_, num_windows_), " of '",
           pattern_, "'); resume with the same data and settings (B is the global batch, ranks times the batch of "
           "one rank), or start a new run");
  T6_CHECK(epoch >= 0 && index >= 0 && index < num_windows_, "batch loader: the saved position (epoch ", epoch,
           ", index ", index, ") is invalid for ", num_windows_, " windows");
  start_epoch(epoch);
  index_ = index;
}

}  // namespace t6
