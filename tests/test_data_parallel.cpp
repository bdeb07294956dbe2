// Data-parallel training (train/parallel/, train/trainer.h). The suite "mpi" runs only under mpirun:
// CTest starts it as `mpirun -np 2 t6_tests --test-suite=mpi` (t6_mpi_tests), and every rank runs the
// same cases, so the collectives line up. The failure cases start mpirun themselves from the ordinary
// suite. A tiny model and few steps keep all of it to seconds.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "core/backend.h"
#include "data_test_support.h"
#include "train/cli/prepare_command.h"
#include "train/parallel/data_parallel.h"
#include "train/parallel/world.h"
#include "train/trainer.h"
#include "train/training_state.h"

using t6::Communicator;
using t6::Device;
using t6::DType;
using t6::Tensor;
using t6::testing::TempDir;
using t6::testing::word_text;
namespace fs = std::filesystem;

namespace {

Communicator& ranks() { return t6::World::get().communicator(Device::CPU); }

// A directory every rank sees (rank 0 makes it and says where), with byte-level token shards in it.
struct SharedCorpus {
  std::optional<TempDir> owned;  // rank 0's
  std::string dir;

  SharedCorpus() {
    Communicator& c = ranks();
    Tensor name = t6::zeros({256}, DType::I32);
    if (c.rank() == 0) {
      owned.emplace();
      const std::string a = owned->write("a.txt", word_text(1, 6000)), b = owned->write("b.txt", word_text(2, 800));
      std::ostringstream out, err;
      REQUIRE(t6::run_prepare_command({"--input", a, b, "--tokenizer", "byte", "--out", *owned / "data",
                                       "--val-fraction", "0.1"}, out, err) == 0);
      const std::string path = owned->path().string();
      REQUIRE(path.size() < 256);
      for (size_t i = 0; i < path.size(); ++i) name.data<int32_t>()[i] = path[i];
    }
    c.broadcast(name, 0);
    for (int32_t ch : name.to_vector<int32_t>())
      if (ch != 0) dir += static_cast<char>(ch);
  }

  std::string operator/(const std::string& name) const { return (fs::path(dir) / name).string(); }

  // 7.3k parameters; batch_size rows of 16 tokens per rank.
  t6::TrainConfig config(const std::string& run, int64_t batch_size, int64_t steps) const {
    t6::TrainConfig c;
    c.model = t6::testing::tiny_byte_model();
    c.data.train = *this / "data/train_*.bin";
    c.data.val = *this / "data/val_*.bin";
    c.train.batch_size = batch_size;
    c.train.seq_len = 16;
    c.train.steps = steps;
    c.train.grad_accum = 2;
    c.train.eval_every = 5;
    c.train.eval_batches = 2;
    c.train.save_every = 5;
    c.train.sample_every = 0;
    c.train.out_dir = *this / run;
    c.optim.lr = 1e-2;
    c.optim.min_lr = 1e-3;
    c.optim.warmup_steps = 2;
    c.optim.decay_steps = 10;
    c.optim.grad_clip = 0.05;  // small, so that clipping (by the global norm) acts at every step
    return c;
  }
};

// FNV-1a over every parameter's bytes.
uint64_t parameter_checksum(const t6::T6Model& model) {
  uint64_t h = 1469598103934665603ull;
  for (const auto& [name, p] : model.named_parameters()) {
    const Tensor host = p.to_device(Device::CPU).contiguous_data();
    const auto* bytes = static_cast<const unsigned char*>(host.raw_data());
    for (int64_t i = 0; i < host.numel() * 4; ++i) h = (h ^ bytes[i]) * 1099511628211ull;
  }
  return h;
}

// Every rank's checksum, gathered.
std::vector<int32_t> checksums_of_all_ranks(const t6::T6Model& model) {
  const uint64_t h = parameter_checksum(model);
  Tensor mine = t6::from_ints({static_cast<int32_t>(h >> 32), static_cast<int32_t>(h & 0xffffffffu)}, {2});
  Tensor all = t6::zeros({2 * ranks().size()}, DType::I32);
  ranks().all_gather(mine, all);
  return all.to_vector<int32_t>();
}

// The loss and the gradient norm (before clipping) of each step: AdamW with clipping barely notices
// a gradient off by a constant factor, the norm does.
struct Steps {
  std::vector<double> losses, norms;
  void add(const t6::StepResult& s) {
    losses.push_back(s.loss);
    norms.push_back(s.grad_norm);
  }
};

Steps steps_of(t6::Trainer& trainer, int64_t steps) {
  Steps result;
  for (int64_t s = 0; s < steps; ++s) result.add(trainer.step());
  return result;
}

std::vector<double> metric_losses(const std::string& out_dir) {
  std::ifstream in(fs::path(out_dir) / "metrics.jsonl");
  std::vector<double> losses;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    if (j.contains("loss")) losses.push_back(j["loss"].get<double>());
  }
  return losses;
}

double max_relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]) / std::abs(b[i]));
  return worst;
}

t6::testing::skip_unless under_mpirun() {
  return {t6::launched_by_mpirun(), "runs under mpirun (CTest runs the suite as t6_mpi_tests)"};
}

}  // namespace

TEST_SUITE("mpi" * under_mpirun()) {

TEST_CASE("communicators: every collective, blocking and started, on the CPU (MPI) and on a GPU (NCCL) when there is one") {
  Communicator& host = ranks();
  const int n = host.size(), r = host.rank();
  std::vector<Device> devices = {Device::CPU};
  if (t6::device_available(Device::CUDA)) devices.push_back(Device::CUDA);
  for (Device device : devices) {
    CAPTURE(t6::device_name(device));
    if (device == Device::CUDA) t6::set_device_ordinal(device, t6::World::get().local_rank());
    Communicator& c = t6::World::get().communicator(device);
    CHECK(c.device() == device);
    CHECK(c.rank() == r);
    CHECK(c.size() == n);
    // all_reduce_sum: rank q holds q + i at i.
    std::vector<double> values;
    for (int i = 0; i < 5; ++i) values.push_back(r + i);
    Tensor t = t6::from_vector(values, {5}, DType::F32, device);
    c.all_reduce_sum(t);
    for (int i = 0; i < 5; ++i) CHECK(t.to_double_vector()[i] == n * (n - 1) / 2.0 + n * i);
    // reduce_scatter_sum: chunk k of every rank holds k; rank r receives n·r in each of its 3 values.
    std::vector<double> chunks;
    for (int k = 0; k < n; ++k) chunks.insert(chunks.end(), 3, k);
    Tensor in = t6::from_vector(chunks, {3 * n}, DType::F32, device), out = t6::zeros({3}, DType::F32, device);
    c.reduce_scatter_sum(in, out);
    CHECK(out.to_double_vector() == std::vector<double>(3, n * r));
    // all_gather: rank q sends {q, −q}.
    Tensor mine = t6::from_vector({double(r), -double(r)}, {2}, DType::F64, device), all = t6::zeros({2 * n}, DType::F64, device);
    c.all_gather(mine, all);
    for (int q = 0; q < n; ++q) {
      CHECK(all.to_double_vector()[2 * q] == q);
      CHECK(all.to_double_vector()[2 * q + 1] == -q);
    }
    // broadcast from the last rank, in int32.
    Tensor ids = t6::from_ints({r, 7 * r}, {2}, device);
    c.broadcast(ids, n - 1);
    CHECK(ids.to_vector<int32_t>() == std::vector<int32_t>{n - 1, 7 * (n - 1)});
    // The started forms, with a blocking collective among them: rank q sends q + 1 and chunks of q.
    Tensor started = t6::full({4}, r + 1.0, DType::F32, device), blocking = t6::full({1}, 1.0, DType::F64, device);
    Tensor scattered_in = t6::full({2 * n}, r, DType::F32, device), scattered = t6::zeros({2}, DType::F32, device);
    c.start_all_reduce_sum(started);
    c.all_reduce_sum(blocking);
    c.start_reduce_scatter_sum(scattered_in, scattered);
    c.wait();
    CHECK(started.to_double_vector() == std::vector<double>(4, n * (n + 1) / 2.0));
    CHECK(blocking.to_double_vector() == std::vector<double>{double(n)});
    CHECK(scattered.to_double_vector() == std::vector<double>(2, n * (n - 1) / 2.0));
    c.barrier();
  }
}

TEST_CASE("data parallel on a GPU: N ranks match one process of batch N·B" * t6::testing::needs_cuda()) {
  const SharedCorpus corpus;
  const int n = ranks().size(), rank = ranks().rank();
  t6::set_device_ordinal(Device::CUDA, t6::World::get().local_rank());
  std::ostringstream out, err;
  t6::TrainConfig one = corpus.config("cuda_reference_" + std::to_string(rank), 2 * n, 10);
  one.train.device = Device::CUDA;
  t6::Trainer reference(one, false, out, err);
  const Steps expected = steps_of(reference, 10);
  // Without buckets, and in 2 KiB buckets reduced on NCCL's stream while backward runs.
  for (double bucket_mb : {0.0, 2.0 / 1024}) {
    for (int zero_stage : {0, 1}) {
      CAPTURE(zero_stage);
      CAPTURE(bucket_mb);
      const std::string run = "cuda_parallel_" + std::to_string(zero_stage) + (bucket_mb > 0 ? "_bucketed" : "");
      t6::TrainConfig config = corpus.config(run, 2, 10);
      config.train.device = Device::CUDA;
      config.train.zero_stage = zero_stage;
      config.train.bucket_mb = bucket_mb;
      t6::Trainer parallel(config, false, out, err, &t6::World::get().communicator(Device::CUDA));
      Steps got;
      for (int step = 0; step < 10; ++step) {
        got.add(parallel.step());
        const std::vector<int32_t> sums = checksums_of_all_ranks(parallel.model());
        for (int r = 1; r < n; ++r) CHECK((sums[2 * r] == sums[0] && sums[2 * r + 1] == sums[1]));
      }
      // The GPU's float32 sums run in other orders than the CPU's.
      CHECK(max_relative_difference(got.losses, expected.losses) <= 1e-4);
      CHECK(max_relative_difference(got.norms, expected.norms) <= 1e-3);
    }
  }
  ranks().barrier();
}

TEST_CASE("data parallel: N ranks of batch B match one process of batch N·B, with and without ZeRO-1") {
  const SharedCorpus corpus;
  const int n = ranks().size(), rank = ranks().rank();
  std::ostringstream out, err;
  // The reference: this process alone, with the whole batch (each rank computes it for itself).
  t6::Trainer reference(corpus.config("reference_" + std::to_string(rank), 2 * n, 10), false, out, err);
  const Steps expected = steps_of(reference, 10);
  for (int zero_stage : {0, 1}) {
    CAPTURE(zero_stage);
    t6::TrainConfig config = corpus.config("parallel_" + std::to_string(zero_stage), 2, 10);
    config.train.zero_stage = zero_stage;
    t6::Trainer parallel(config, false, out, err, &ranks());
    Steps got;
    for (int step = 0; step < 10; ++step) {
      got.add(parallel.step());
      const std::vector<int32_t> sums = checksums_of_all_ranks(parallel.model());
      for (int r = 1; r < n; ++r) {  // identical parameters on every rank after every step
        CHECK(sums[2 * r] == sums[0]);
        CHECK(sums[2 * r + 1] == sums[1]);
      }
    }
    CHECK(max_relative_difference(got.losses, expected.losses) <= 1e-5);
    CHECK(max_relative_difference(got.norms, expected.norms) <= 1e-5);  // the global norm, of the mean gradient
    CHECK(got.losses.back() < got.losses.front());                       // it trains
  }
  ranks().barrier();  // before rank 0 removes the directory
}

TEST_CASE("data parallel: buckets reduced during backward give the update of one reduction after it") {
  // Four parameters of odd sizes, the first one unused; each rank's loss weighs them differently. One
  // optimizer reduces them in buckets of one parameter each, started by backward (the unused one's by
  // step()); the other reduces them all after backward. Both must make the same updates, with and
  // without ZeRO-1.
  const int rank = ranks().rank();
  const std::vector<t6::Shape> shapes = {{2}, {5}, {3, 4}, {7}};
  auto make_params = [&] {
    std::vector<Tensor> params;
    for (size_t i = 0; i < shapes.size(); ++i) {
      std::vector<double> values;
      for (int64_t k = 0; k < t6::numel_of(shapes[i]); ++k) values.push_back(0.1 * (k + 1) - 0.3 * i);
      params.push_back(t6::from_vector(values, shapes[i], DType::F32).set_requires_grad());
    }
    return params;
  };
  auto backward = [&](const std::vector<Tensor>& p, const t6::GradReadyHook& hook) {
    const double w = 1.0 + rank;
    Tensor loss = t6::sum(p[1] * w) + t6::sum(p[2] * p[2]) + t6::sum(t6::exp(p[3] * w)) + t6::sum(p[1] * p[1]);
    loss.backward({}, false, hook);
  };
  t6::OptimConfig config;
  config.lr = 0.05;
  config.grad_clip = 0.5;
  for (int zero_stage : {0, 1}) {
    CAPTURE(zero_stage);
    std::vector<Tensor> bucketed = make_params(), whole = make_params();
    t6::DataParallelAdamW by_bucket(bucketed, config, &ranks(), zero_stage, /*bucket_mb=*/1e-6);
    t6::DataParallelAdamW at_once(whole, config, &ranks(), zero_stage, /*bucket_mb=*/0);
    const t6::GradReadyHook hook = by_bucket.reduce_during_backward();
    REQUIRE(hook);
    CHECK_FALSE(at_once.reduce_during_backward());  // one bucket: nothing to overlap
    for (int step = 0; step < 3; ++step) {
      for (std::vector<Tensor>* params : {&bucketed, &whole})
        for (Tensor& p : *params) p.zero_grad();
      backward(bucketed, hook);
      backward(whole, {});
      const double norm = by_bucket.step(0.05), expected_norm = at_once.step(0.05);
      CHECK(norm == doctest::Approx(expected_norm).epsilon(1e-6));
      for (size_t i = 0; i < shapes.size(); ++i) {
        const std::vector<double> got = bucketed[i].to_double_vector(), want = whole[i].to_double_vector();
        for (size_t k = 0; k < got.size(); ++k) CHECK(got[k] == doctest::Approx(want[k]).epsilon(1e-6));
      }
    }
    // A second report of one parameter in the same step is a misuse, named.
    for (Tensor& p : bucketed) p.zero_grad();
    backward(bucketed, hook);
    CHECK_THROWS_WITH_AS(hook(bucketed[2]), doctest::Contains("became final twice"), t6::Error);
    by_bucket.step(0.05);
  }
  ranks().barrier();
}

TEST_CASE("data parallel: training with small buckets matches one reduction after backward, with and without ZeRO-1") {
  const SharedCorpus corpus;
  std::ostringstream out, err;
  for (int zero_stage : {0, 1}) {
    CAPTURE(zero_stage);
    t6::TrainConfig whole = corpus.config("unbucketed_" + std::to_string(zero_stage), 2, 10);
    whole.train.zero_stage = zero_stage;
    whole.train.bucket_mb = 0;
    t6::Trainer at_once(whole, false, out, err, &ranks());
    const Steps expected = steps_of(at_once, 10);
    // 2 KiB buckets: the 7.3k parameters (29 KiB) in a dozen of them.
    t6::TrainConfig config = corpus.config("bucketed_" + std::to_string(zero_stage), 2, 10);
    config.train.zero_stage = zero_stage;
    config.train.bucket_mb = 2.0 / 1024;
    t6::Trainer by_bucket(config, false, out, err, &ranks());
    Steps got;
    for (int step = 0; step < 10; ++step) {
      got.add(by_bucket.step());
      const std::vector<int32_t> sums = checksums_of_all_ranks(by_bucket.model());
      for (int r = 1; r < ranks().size(); ++r) CHECK((sums[2 * r] == sums[0] && sums[2 * r + 1] == sums[1]));
    }
    CHECK(max_relative_difference(got.losses, expected.losses) <= 1e-5);
    CHECK(max_relative_difference(got.norms, expected.norms) <= 1e-5);
  }
  ranks().barrier();
}

TEST_CASE("data parallel: a run resumes on another number of ranks when the global batch is the same") {
  const SharedCorpus corpus;
  const int n = ranks().size(), rank = ranks().rank();
  std::ostringstream out, err;
  // N ranks (ZeRO-1: its sharded state is gathered into the checkpoint) save at step 5 and go on to 10.
  t6::TrainConfig wide = corpus.config("wide", 2, 10);
  wide.train.zero_stage = 1;
  t6::Trainer(wide, false, out, err, &ranks()).run();
  // One process of batch 2·N continues the copy of step 5.
  if (rank == 0) {
    fs::copy(corpus / "wide", corpus / "narrow");
    for (const std::string& path : {t6::checkpoint_state_path(corpus / "narrow", 10),
                                    t6::checkpoint_model_path(corpus / "narrow", 10)})
      fs::remove(path);
    t6::TrainConfig narrow = corpus.config("narrow", 2 * n, 10);
    t6::Trainer(narrow, true, out, err).run();
    const std::vector<double> a = metric_losses(corpus / "wide"), b = metric_losses(corpus / "narrow");
    REQUIRE(a.size() == 10);
    CHECK(max_relative_difference(std::vector<double>(b.begin() + 5, b.end()), std::vector<double>(a.begin() + 5, a.end())) <= 1e-5);
  }
  // And the other way: one process saves at step 5, N ranks (sharding its state) continue.
  if (rank == 0) {
    t6::Trainer(corpus.config("single", 2 * n, 10), false, out, err).run();
    fs::copy(corpus / "single", corpus / "spread");
    for (const std::string& path : {t6::checkpoint_state_path(corpus / "spread", 10),
                                    t6::checkpoint_model_path(corpus / "spread", 10)})
      fs::remove(path);
  }
  ranks().barrier();
  t6::TrainConfig spread = corpus.config("spread", 2, 10);
  spread.train.zero_stage = 1;
  t6::Trainer(spread, true, out, err, &ranks()).run();
  if (rank == 0) {
    const std::vector<double> a = metric_losses(corpus / "single"), b = metric_losses(corpus / "spread");
    REQUIRE(b.size() == 10);
    CHECK(max_relative_difference(std::vector<double>(b.begin() + 5, b.end()), std::vector<double>(a.begin() + 5, a.end())) <= 1e-5);
  }
  // A global batch that differs is refused, naming both.
  t6::TrainConfig other = corpus.config("spread", 3, 20);
  const std::string message = t6::testing::error_message([&] { t6::Trainer(other, true, out, err, &ranks()); });
  CHECK(message.find("train.batch_size") != std::string::npos);
  ranks().barrier();
}

}  // TEST_SUITE

#ifdef T6_MPIEXEC
namespace {

// Runs a shell script; returns its exit status and output.
std::pair<int, std::string> shell(const TempDir& dir, const std::string& script) {
  const std::string file = dir.write("script.sh", script), log = dir / "script.log";
  const int status = std::system(("bash " + file + " > " + log + " 2>&1").c_str());
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str()};
}

// A training config of the tiny model over the corpus `t6 prepare` writes in dir/data.
std::string prepared_config(const TempDir& dir, const std::string& out_dir, int64_t steps) {
  const std::string text = dir.write("a.txt", word_text(3, 4000));
  std::ostringstream out, err;
  REQUIRE(t6::run_prepare_command({"--input", text, "--tokenizer", "byte", "--out", dir / "data"}, out, err) == 0);
  nlohmann::json c = {{"model", {{"vocab_size", 256}, {"n_layer", 1}, {"n_embd", 16}, {"n_head", 2}, {"head_dim", 8},
                                 {"q_rank", 2}, {"rank", 2}, {"block_size", 16}}},
                      {"data", {{"train", dir / "data/train_*.bin"}, {"val", ""}}},
                      {"train", {{"batch_size", 2}, {"seq_len", 16}, {"steps", steps}, {"save_every", 100000},
                                 {"eval_every", 100000}, {"sample_every", 0}, {"out_dir", out_dir}, {"threads", 1}}}};
  return dir.write("config.json", c.dump());
}

const std::string kMpirun = std::string(T6_MPIEXEC) + " -np 2 --oversubscribe --allow-run-as-root ";

// The start of a shell script that trains `config` as two ranks in the background and waits until
// training is under way (rank 0 has written step 1): then $mpirun_pid is mpirun, $ranks its children.
std::string start_two_ranks(const TempDir& dir, const std::string& config) {
  return kMpirun + T6_BINARY + " train --config " + config + " &\n" + R"(mpirun_pid=$!
for i in $(seq 600); do [ -s )" + dir / "run/metrics.jsonl" + R"( ] && break; sleep 0.1; done
ranks=$(for s in /proc/[0-9]*/stat; do read -r pid _ _ ppid _ < "$s" 2>/dev/null && [ "$ppid" = "$mpirun_pid" ] && echo "$pid"; done)
)";
}

}  // namespace

TEST_CASE("data parallel: an error on one rank ends every rank with that rank's message") {
  const TempDir dir;
  // Only rank 0 creates out_dir, and here it cannot (a file is in the way): rank 1 is by then waiting
  // for it in the first step's all-reduce, and must not wait forever.
  dir.write("blocked", "");
  const std::string config = prepared_config(dir, dir / "blocked/run", 1000);
  const auto start = std::chrono::steady_clock::now();
  const auto [status, output] = shell(dir, "timeout 60 " + kMpirun + T6_BINARY + " train --config " + config + "\n");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CAPTURE(output);
  CHECK(status != 0);
  CHECK(status != 124);  // not ended by the timeout
  CHECK(seconds < 30);
  CHECK(output.find("t6 train (rank 0 of 2): error: ") != std::string::npos);
  CHECK(output.find("cannot create the directory") != std::string::npos);
}

TEST_CASE("data parallel: killing one rank ends the others within seconds") {
  const TempDir dir;
  const std::string config = prepared_config(dir, dir / "run", 1000000);
  // mpirun's children are the ranks: kill one once training is under way (rank 0 has written step 1),
  // then every process must be gone and mpirun must fail.
  const std::string script = start_two_ranks(dir, config) + R"(echo "ranks: $ranks"
victim=$(echo "$ranks" | tail -1)
kill -9 "$victim"
start=$(date +%s)
wait "$mpirun_pid"; status=$?
echo "mpirun status $status after $(( $(date +%s) - start )) s"
# Gone within seconds (a process that has ended may linger a moment as a zombie until reaped).
for pid in $ranks; do
  for i in $(seq 50); do grep -qs '^State:[[:space:]]*[^Z]' /proc/$pid/status || break; sleep 0.1; done
  grep -qs '^State:[[:space:]]*[^Z]' /proc/$pid/status && { echo "rank process $pid still running"; exit 3; }
done
[ "$status" -ne 0 ] || exit 4
exit 0
)";
  const auto [status, output] = shell(dir, "timeout 60 bash " + dir.write("kill.sh", script) + "\n");
  CAPTURE(output);
  CHECK(status == 0);
  CHECK(output.find("ranks: ") != std::string::npos);
}

TEST_CASE("data parallel: SIGTERM to one rank stops every rank after the same step, saved once") {
  const TempDir dir;
  const std::string config = prepared_config(dir, dir / "run", 1000000);
  // Only the last rank gets the signal; rank 0 must still save and every rank stop.
  const std::string script = start_two_ranks(dir, config) + R"(victim=$(echo "$ranks" | tail -1)
kill -TERM "$victim"
wait "$mpirun_pid"; echo "mpirun status $?"
)";
  const auto [status, output] = shell(dir, "timeout 60 bash " + dir.write("term.sh", script) + "\n");
  CAPTURE(output);
  CHECK(status == 0);
  CHECK(output.find("mpirun status 0") == std::string::npos);  // 143 from the ranks, not success
  CHECK(output.find("interrupted: saved step") != std::string::npos);
  CHECK(t6::list_checkpoints(dir / "run").size() == 1);
}
#endif
