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

namespace {

// The next n batches of a loader, concatenated inputs and targets per batch.
std::vector<std::pair<Ids, Ids>> next_batches(t6::BatchLoader& loader, int n) {
  std::vector<std::pair<Ids, Ids>> batches(n);
  for (auto& [inputs, targets] : batches) loader.next_batch(inputs, targets);
  return batches;
}

// The next n batches of `world_size` rank loaders of batch B, each batch the ranks' rows in rank order.
std::vector<std::pair<Ids, Ids>> next_batches_of_ranks(const std::string& pattern, int world_size, int64_t B,
                                                        bool shuffle, int n) {
  std::vector<std::pair<Ids, Ids>> joined(n);
  for (int r = 0; r < world_size; ++r) {
    t6::BatchLoader rank(pattern, B, 3, 300, shuffle, 5, {r, world_size});
    CHECK(rank.B() == B);
    CHECK(rank.global_batch() == world_size * B);
    for (auto& [inputs, targets] : joined) {
      Ids x, y;
      rank.next_batch(x, y);
      CHECK(x.size() == static_cast<size_t>(B * 3));
      inputs.insert(inputs.end(), x.begin(), x.end());
      targets.insert(targets.end(), y.begin(), y.end());
    }
  }
  return joined;
}

}  // namespace

TEST_CASE("batch loader: N ranks of batch B read the windows of one rank of batch N*B, row by row") {
  TempDir dir;
  write_counting_shards(dir, {100, 61});  // T = 3, global batch 4 -> floor(160 / 12) = 13 windows
  const std::string pattern = dir / "train_*.bin";
  for (const bool shuffle : {false, true}) {
    CAPTURE(shuffle);
    t6::BatchLoader one(pattern, 4, 3, 300, shuffle, 5);
    const auto reference = next_batches(one, 30);  // into the third epoch
    CHECK(next_batches_of_ranks(pattern, 2, 2, shuffle, 30) == reference);
    CHECK(next_batches_of_ranks(pattern, 4, 1, shuffle, 30) == reference);
    CHECK(next_batches_of_ranks(pattern, 1, 4, shuffle, 30) == reference);
  }

  // Evaluation: the ranks' rows of window w, in rank order, are the 1-rank window w.
  const t6::BatchLoader one(pattern, 4, 3, 300, false, 0);
  const t6::BatchLoader rank0(pattern, 2, 3, 300, false, 0, {0, 2}), rank1(pattern, 2, 3, 300, false, 0, {1, 2});
  CHECK(rank0.num_windows() == one.num_windows());
  CHECK(rank1.eval_batch_count(0) == one.eval_batch_count(0));
  for (int64_t w = 0; w < one.num_windows(); ++w) {
    Ids x, y, x0, y0, x1, y1;
    one.read_window(w, x, y);
    rank0.read_window(w, x0, y0);
    rank1.read_window(w, x1, y1);
    CHECK(x0 == Ids(x.begin(), x.begin() + 6));
    CHECK(x1 == Ids(x.begin() + 6, x.end()));
    CHECK(y0 == Ids(y.begin(), y.begin() + 6));
    CHECK(y1 == Ids(y.begin() + 6, y.end()));
  }
}

TEST_CASE("batch loader: a position saved by N ranks resumes on M ranks with the same global batch") {
  TempDir dir;
  write_counting_shards(dir, {200});  // T = 3, global batch 4 -> 16 windows
  const std::string pattern = dir / "train_*.bin";
  for (const bool shuffle : {false, true}) {
    CAPTURE(shuffle);
    t6::BatchLoader saver(pattern, 2, 3, 300, shuffle, 5, {1, 2});
    next_batches(saver, 21);
    const nlohmann::json saved = nlohmann::json::parse(saver.state().dump());
    CHECK(saved["B"] == 4);  // the global batch

    t6::BatchLoader one(pattern, 4, 3, 300, shuffle, 5);
    one.restore(saved);
    const auto reference = next_batches(one, 20);
    t6::BatchLoader uninterrupted(pattern, 4, 3, 300, shuffle, 5);
    next_batches(uninterrupted, 21);
    CHECK(next_batches(uninterrupted, 20) == reference);

    std::vector<std::pair<Ids, Ids>> joined(20);
    for (int r = 0; r < 4; ++r) {
      t6::BatchLoader rank(pattern, 1, 3, 300, shuffle, 5, {r, 4});
      rank.restore(saved);
      for (auto& [inputs, targets] : joined) {
        Ids x, y;
        rank.next_batch(x, y);
        inputs.insert(inputs.end(), x.begin(), x.end());
        targets.insert(targets.end(), y.begin(), y.end());
      }
    }
    CHECK(joined == reference);

    t6::BatchLoader other_global_batch(pattern, 2, 3, 300, shuffle, 5, {0, 1});
    const std::string message = error_message([&] { other_global_batch.restore(saved); });
    CHECK(message.find("does not match") != std::string::npos);
    CHECK(message.find("global batch") != std::string::npos);
  }
}

TEST_CASE("batch loader: a rank outside the world is an error") {
  TempDir dir;
  write_counting_shards(dir, {50});
  const std::string pattern = dir / "train_*.bin";
  CHECK(error_message([&] { t6::BatchLoader(pattern, 1, 1, 100, false, 0, {2, 2}); }).find("rank 2 of 2") !=
        std::string::npos);
  CHECK(error_message([&] { t6::BatchLoader(pattern, 1, 1, 100, false, 0, {0, 0}); }).find("rank 0 of 0") !=
        std::string::npos);
  const std::string message = error_message([&] { t6::BatchLoader(pattern, 10, 5, 100, false, 0, {0, 2}); });
  CHECK(message.find("B=20 by T=5") != std::string::npos);
  CHECK(message.find("2 ranks of 10") != std::string::npos);
}
