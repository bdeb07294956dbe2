// The batch loader: windows exactly as the spec defines them (across shard boundaries), epoch wrap,
// deterministic shuffling, bit-identical resume from state(), and its errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>

#include "data_test_support.h"
#include "train/data/batch_loader.h"
#include "train/data/token_shards.h"

using t6::testing::error_message;
using t6::testing::TempDir;
using Ids = std::vector<int32_t>;

namespace {

// Writes shards whose tokens are their positions in the concatenation (0, 1, 2, ...), so a batch shows
// where it came from. The later shard is written first, to check that name order wins.
void write_counting_shards(const TempDir& dir, const std::vector<int>& shard_sizes) {
  uint16_t next = 0;
  std::vector<std::vector<uint16_t>> shards;
  for (const int size : shard_sizes) {
    shards.emplace_back(size);
    for (uint16_t& token : shards.back()) token = next++;
  }
  for (size_t s = shards.size(); s-- > 0;)
    t6::write_token_shard(dir / ("train_00000" + std::to_string(s) + ".bin"), shards[s]);
}

Ids iota_ids(int32_t first, int32_t count) {
  Ids ids(count);
  std::iota(ids.begin(), ids.end(), first);
  return ids;
}

// The window a batch came from, given counting shards.
int64_t window_of(const Ids& inputs) { return inputs[0] / static_cast<int64_t>(inputs.size()); }

// The windows of the next n batches.
std::vector<int64_t> next_windows(t6::BatchLoader& loader, int n) {
  std::vector<int64_t> windows;
  Ids inputs, targets;
  for (int i = 0; i < n; ++i) {
    loader.next_batch(inputs, targets);
    windows.push_back(window_of(inputs));
  }
  return windows;
}

}  // namespace

TEST_CASE("batch loader: sequential windows follow the spec across a shard boundary, epochs wrap") {
  TempDir dir;
  write_counting_shards(dir, {10, 7});  // 17 tokens; B·T = 6 -> floor(16 / 6) = 2 windows
  t6::BatchLoader loader(dir / "train_*.bin", 2, 3, 100, false, 0);
  CHECK(loader.files() == std::vector<std::string>{dir / "train_000000.bin", dir / "train_000001.bin"});
  CHECK(loader.total_tokens() == 17);
  CHECK(loader.num_windows() == 2);

  Ids inputs, targets;
  loader.next_batch(inputs, targets);  // window 0: tokens [0, 7)
  CHECK(inputs == iota_ids(0, 6));
  CHECK(targets == iota_ids(1, 6));
  loader.next_batch(inputs, targets);  // window 1: tokens [6, 13), crossing into the second shard at 10
  CHECK(inputs == iota_ids(6, 6));
  CHECK(targets == iota_ids(7, 6));
  CHECK(loader.epoch() == 1);
  CHECK(loader.index_in_epoch() == 0);
  loader.next_batch(inputs, targets);  // epoch 1 starts again at window 0
  CHECK(inputs == iota_ids(0, 6));
  CHECK(loader.index_in_epoch() == 1);
}

TEST_CASE("batch loader: sequential evaluation windows") {
  TempDir dir;
  write_counting_shards(dir, {25});  // B·T = 4 -> floor(24 / 4) = 6 windows
  t6::BatchLoader loader(dir / "train_*.bin", 1, 4, 100, true, 7);
  CHECK(loader.num_windows() == 6);
  CHECK(loader.eval_batch_count(0) == 6);
  CHECK(loader.eval_batch_count(2) == 2);
  CHECK(loader.eval_batch_count(100) == 6);
  Ids inputs, targets;
  loader.read_window(5, inputs, targets);  // the last complete window: tokens [20, 25)
  CHECK(inputs == iota_ids(20, 4));
  CHECK(targets == iota_ids(21, 4));
  CHECK(error_message([&] { loader.read_window(6, inputs, targets); }).find("window 6") != std::string::npos);
}

TEST_CASE("batch loader: shuffling is a per-epoch permutation fixed by the seed") {
  TempDir dir;
  write_counting_shards(dir, {101});  // B·T = 5 -> 20 windows
  const std::string pattern = dir / "train_*.bin";
  t6::BatchLoader a(pattern, 1, 5, 200, true, 42), b(pattern, 1, 5, 200, true, 42), c(pattern, 1, 5, 200, true, 43);
  const std::vector<int64_t> order_a = next_windows(a, 40);
  CHECK(next_windows(b, 40) == order_a);
  CHECK(next_windows(c, 40) != order_a);

  const std::vector<int64_t> epoch0(order_a.begin(), order_a.begin() + 20);
  const std::vector<int64_t> epoch1(order_a.begin() + 20, order_a.end());
  std::vector<int64_t> sorted0 = epoch0, sorted1 = epoch1;
  std::sort(sorted0.begin(), sorted0.end());
  std::sort(sorted1.begin(), sorted1.end());
  std::vector<int64_t> all(20);
  std::iota(all.begin(), all.end(), 0);
  CHECK(sorted0 == all);  // every window exactly once per epoch
  CHECK(sorted1 == all);
  CHECK(epoch0 != epoch1);  // a new order each epoch
  CHECK(epoch0 != all);
}

TEST_CASE("batch loader: restore(state()) continues bit-identically") {
  TempDir dir;
  write_counting_shards(dir, {60, 41});  // B·T = 4 -> 25 windows
  const std::string pattern = dir / "train_*.bin";
  for (const bool shuffle : {false, true}) {
    t6::BatchLoader original(pattern, 2, 2, 200, shuffle, 9);
    next_windows(original, 37);  // into the second epoch
    const nlohmann::json saved = nlohmann::json::parse(original.state().dump());
    CHECK(saved["epoch"] == 1);
    CHECK(saved["index"] == 12);

    t6::BatchLoader resumed(pattern, 2, 2, 200, shuffle, 9);
    resumed.restore(saved);
    CHECK(next_windows(resumed, 60) == next_windows(original, 60));
  }
}

TEST_CASE("batch loader: errors name the data and the fix") {
  TempDir dir;
  write_counting_shards(dir, {6});
  const std::string pattern = dir / "train_*.bin";

  std::string message = error_message([&] { t6::BatchLoader(pattern, 2, 3, 100, false, 0); });  // needs 7 tokens
  CHECK(message.find(pattern) != std::string::npos);
  CHECK(message.find("B=2 by T=3") != std::string::npos);
  CHECK(message.find("needs B*T+1 = 7 tokens") != std::string::npos);

  message = error_message([&] { t6::BatchLoader(dir / "val_*.bin", 1, 1, 100, false, 0); });
  CHECK(message.find(dir / "val_*.bin") != std::string::npos);
  CHECK(message.find("t6 prepare") != std::string::npos);

  message = error_message([&] { t6::BatchLoader(pattern, 1, 1, 5, false, 0); });  // tokens are 0..5
  CHECK(message.find(dir / "train_000000.bin") != std::string::npos);
  CHECK(message.find("token 5 at offset 5") != std::string::npos);

  t6::BatchLoader loader(pattern, 1, 1, 100, true, 1);
  nlohmann::json state = loader.state();
  state["seed"] = 2;
  CHECK(error_message([&] { loader.restore(state); }).find("does not match") != std::string::npos);
  state.erase("seed");
  CHECK(error_message([&] { loader.restore(state); }).find("'seed'") != std::string::npos);
}
