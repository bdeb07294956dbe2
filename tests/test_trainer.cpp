// The trainer end to end on a tiny byte-level corpus (train/trainer.h): loss goes down, metrics.jsonl
// and loss.svg, determinism run after run, bit-identical --resume (shuffled or not), gradient
// accumulation, init_from, samples, keep_checkpoints, Ctrl-C, diverging and broken runs, `t6 eval`,
// `t6 bench train`, and bad input through the command line.
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "autograd/ops.h"
#include "data_test_support.h"
#include "train/data/batch_loader.h"
#include "train/cli/commands.h"
#include "train/evaluate.h"
#include "train/lr_schedule.h"
#include "train/model_checkpoint.h"
#include "train/cli/prepare_command.h"
#include "train/trainer.h"
#include "train/training_state.h"

using t6::testing::error_message;
using t6::testing::TempDir;
using t6::testing::word_text;
namespace fs = std::filesystem;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A temporary directory with byte-level token shards made by `t6 prepare`: data/train_000000.bin
// (about 3000 tokens: 46 windows of 4×16) and data/val_000000.bin (about 400 tokens: 6 windows).
struct Corpus {
  TempDir dir;
  std::string train, val;

  Corpus() {
    const std::string a = dir.write("a.txt", word_text(1, 3000)), b = dir.write("b.txt", word_text(2, 400));
    std::ostringstream out, err;
    const int status = t6::run_prepare_command(
        {"--input", a, b, "--tokenizer", "byte", "--out", dir / "data", "--val-fraction", "0.1"}, out, err);
    REQUIRE_MESSAGE(status == 0, err.str());
    train = dir / "data/train_*.bin";
    val = dir / "data/val_*.bin";
  }

  // 7.3k parameters: V=256 bytes, one layer of d=16, two heads of 8, ranks 2; batches of 4×16.
  t6::TrainConfig config(const std::string& run, int64_t steps) const {
    t6::TrainConfig c;
    c.model = t6::testing::tiny_byte_model();
    c.data.train = train;
    c.data.val = val;
    c.train.batch_size = 4;
    c.train.seq_len = 16;
    c.train.steps = steps;
    c.train.eval_every = 10;
    c.train.eval_batches = 2;
    c.train.save_every = 1000;
    c.train.sample_every = 0;
    c.train.out_dir = dir / run;
    c.optim.lr = 1e-2;
    c.optim.min_lr = 1e-3;
    c.optim.warmup_steps = 5;
    c.optim.decay_steps = 40;
    return c;
  }

  // The config as a file for `t6 train --config`.
  std::string config_file(const t6::TrainConfig& c, const std::string& name = "run.json") const {
    return dir.write(name, c.to_json().dump(2));
  }
};

t6::TrainResult train(const t6::TrainConfig& config, bool resume = false) {
  std::ostringstream out, err;
  return t6::Trainer(config, resume, out, err).run();
}

using t6::testing::CommandResult;

CommandResult t6_command(const std::vector<std::string>& args) {
  return t6::testing::run_captured(t6::run_command_line, args);
}

// The error line of a failed command: exactly one line, "t6 COMMAND: error: ...", ending the output.
std::string failure(const CommandResult& r, const std::string& command) {
  CHECK(r.status == 1);
  const size_t start = r.err.rfind("t6 " + command + ": error: ");
  REQUIRE_MESSAGE(start != std::string::npos, r.err);
  return r.err.substr(start);
}

std::vector<nlohmann::json> read_metrics(const std::string& out_dir) {
  std::ifstream in(fs::path(out_dir) / "metrics.jsonl");
  std::vector<nlohmann::json> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// metrics.jsonl without the timings, which are the only values allowed to differ between runs.
std::vector<nlohmann::json> metrics_without_timing(const std::string& out_dir) {
  std::vector<nlohmann::json> lines = read_metrics(out_dir);
  for (nlohmann::json& j : lines) j.erase("tokens_per_s");
  return lines;
}

// Every tensor of a safetensors file as float32 bits, by name.
std::map<std::string, std::vector<uint32_t>> tensor_bits(const std::string& path) {
  const t6::SafetensorsFile file = t6::SafetensorsFile::open(path);
  std::map<std::string, std::vector<uint32_t>> bits;
  for (const t6::SafetensorsTensor& t : file.tensors()) {
    const std::vector<float> values = file.read_float32(t.name);
    std::vector<uint32_t>& b = bits[t.name];
    b.resize(values.size());
    std::memcpy(b.data(), values.data(), values.size() * 4);
  }
  return bits;
}

// Both files of checkpoint `step` hold the same tensors bit for bit in both runs.
void check_same_checkpoint(const std::string& dir_a, const std::string& dir_b, int64_t step) {
  CHECK(tensor_bits(t6::checkpoint_model_path(dir_a, step)) == tensor_bits(t6::checkpoint_model_path(dir_b, step)));
  CHECK(tensor_bits(t6::checkpoint_state_path(dir_a, step)) == tensor_bits(t6::checkpoint_state_path(dir_b, step)));
}

// The mean loss of `model` on window w of `data`, computed here without the trainer.
double window_loss(const t6::T6Model& model, const t6::BatchLoader& data, int64_t w) {
  std::vector<int32_t> inputs, targets;
  data.read_window(w, inputs, targets);
  return model.forward(t6::from_ints(inputs, {data.B(), data.T()}), t6::from_ints(targets, {data.B(), data.T()}))
      .loss.item();
}

// What SIGINT does now: a handler's address, or SIG_DFL / SIG_IGN.
void (*sigint_handler())(int) {
  struct sigaction now {};
  sigaction(SIGINT, nullptr, &now);
  return now.sa_handler;
}

}  // namespace

TEST_CASE("trainer: 30 steps on a tiny corpus lower the loss; metrics.jsonl, loss.svg and checkpoints") {
  Corpus corpus;
  t6::TrainConfig config = corpus.config("run", 30);
  config.train.eval_batches = 0;  // every complete validation window
  config.train.save_every = 10;
  config.train.keep_checkpoints = 2;
  const std::string& dir = config.train.out_dir;
  const t6::TrainResult result = train(config);
  CHECK(result.steps_done == 30);
  CHECK(result.stop_signal == 0);

  // One line per step, with a val line after every 10th step; steps count from 1.
  const std::vector<nlohmann::json> metrics = read_metrics(dir);
  REQUIRE(metrics.size() == 33);
  std::vector<double> losses;
  std::vector<std::pair<int64_t, double>> val;
  for (const nlohmann::json& j : metrics) {
    if (j.contains("val_loss")) {
      CHECK(j.size() == 2);
      val.emplace_back(j["step"].get<int64_t>(), j["val_loss"].get<double>());
      continue;
    }
    const int64_t step = static_cast<int64_t>(losses.size()) + 1;
    CHECK(j.size() == 5);
    CHECK(j["step"] == step);
    CHECK(j["lr"].get<double>() == t6::learning_rate(config.optim, step - 1));
    CHECK(j["grad_norm"].get<double>() > 0.0);
    CHECK(j["tokens_per_s"].get<double>() > 0.0);
    losses.push_back(j["loss"].get<double>());
  }
  REQUIRE(losses.size() == 30);
  CHECK(metrics[10]["step"] == 10);  // the val line follows its step's line
  CHECK(metrics[10].contains("val_loss"));
  CHECK(losses[0] == doctest::Approx(std::log(256.0)).epsilon(0.1));  // an untrained model: about uniform
  CHECK(losses[29] < losses[0] - 1.5);
  CHECK(result.final_train_loss == losses[29]);
  REQUIRE(val.size() == 3);
  CHECK(val[0].first == 10);
  CHECK(val[2].first == 30);
  CHECK(val[2].second < val[0].second);
  CHECK(result.final_val_loss == val[2].second);

  // The val loss is evaluate() over every window of the validation data, with the saved weights.
  const t6::BatchLoader val_data(corpus.val, 4, 16, 256, false, 0);
  const std::unique_ptr<t6::T6Model> final_model = t6::load_model(t6::checkpoint_model_path(dir, 30));
  const t6::EvalResult eval = t6::evaluate(*final_model, val_data, 0);
  CHECK(eval.batches == val_data.num_windows());
  CHECK(eval.batches == 6);
  CHECK(eval.mean_loss == val[2].second);

  CHECK(t6::list_checkpoints(dir) == std::vector<int64_t>{20, 30});
  CHECK(t6::checkpoint_tokenizer(t6::SafetensorsFile::open(t6::checkpoint_model_path(dir, 30))) == "byte");
  CHECK(t6::read_json_file(dir + "/config.json") == config.to_json());
  std::ifstream svg(dir + "/loss.svg");
  std::stringstream svg_text;
  svg_text << svg.rdbuf();
  CHECK(contains(svg_text.str(), "<svg"));
  CHECK(contains(svg_text.str(), "<polyline"));
}

TEST_CASE("trainer: the same config gives bit-identical losses and weights, run after run") {
  Corpus corpus;
  t6::TrainConfig first = corpus.config("first", 12), second = corpus.config("second", 12);
  first.train.grad_accum = second.train.grad_accum = 2;
  train(first);
  train(second);
  const std::vector<nlohmann::json> a = metrics_without_timing(first.train.out_dir);
  CHECK(a.size() == 12 + 2);
  CHECK(a == metrics_without_timing(second.train.out_dir));  // doubles compared exactly
  check_same_checkpoint(first.train.out_dir, second.train.out_dir, 12);
}

TEST_CASE("trainer: --resume continues bit-identically to an uninterrupted run") {
  Corpus corpus;
  for (const bool shuffle : {true, false}) {
    CAPTURE(shuffle);
    // 56 steps run through the 46 training windows once and into a second epoch (a new shuffle).
    t6::TrainConfig whole = corpus.config(shuffle ? "whole_shuffled" : "whole", 56);
    t6::TrainConfig part = corpus.config(shuffle ? "part_shuffled" : "part", 23);
    whole.data.shuffle = part.data.shuffle = shuffle;
    train(whole);
    const t6::TrainResult stopped = train(part);
    CHECK(stopped.steps_done == 23);
    part.train.steps = 56;
    const t6::TrainResult resumed = train(part, /*resume=*/true);
    CHECK(resumed.steps_done == 56);

    // Every step's loss, lr and gradient norm, and every evaluation, as if never stopped; the first run
    // also evaluated after its own last step, 23.
    const std::vector<nlohmann::json> expected = metrics_without_timing(whole.train.out_dir);
    CHECK(expected.size() == 56 + 6);
    std::vector<nlohmann::json> actual = metrics_without_timing(part.train.out_dir);
    const nlohmann::json extra_eval = {{"step", 23}, {"val_loss", stopped.final_val_loss}};
    REQUIRE(actual.size() == expected.size() + 1);
    CHECK(actual[23 + 2] == extra_eval);  // after 23 step lines and the evaluations of steps 10 and 20
    actual.erase(actual.begin() + 23 + 2);
    CHECK(actual == expected);
    check_same_checkpoint(whole.train.out_dir, part.train.out_dir, 56);
  }
}

// At the spec's initialisation both c_proj layers are zero, which zeroes the gradient of every weight
// before them (8 of the 11 tensors here): comparisons of those gradients would be 0 against 0. So the
// accumulation tests start from random weights in every layer.
TEST_CASE("trainer: gradient accumulation averages the gradients of its micro-batches") {
  Corpus corpus;
  SUBCASE("two half batches accumulated equal one whole batch, to float32 rounding") {
    t6::ModelConfig mc = corpus.config("unused", 1).model;
    t6::T6Model model(mc);
    t6::Generator gen(17);
    model.fill_uniform(gen, 0.5);
    const t6::BatchLoader whole(corpus.train, 4, 16, 256, false, 0), halves(corpus.train, 2, 16, 256, false, 0);
    std::vector<int32_t> x, y;
    whole.read_window(0, x, y);
    model.forward(t6::from_ints(x, {4, 16}), t6::from_ints(y, {4, 16})).loss.backward();
    std::vector<std::vector<double>> reference;
    for (const t6::Tensor& p : model.parameters()) reference.push_back(p.grad().to_double_vector());

    model.zero_grad();
    for (int64_t w = 0; w < 2; ++w) {  // windows 0 and 1 of 2×16 are the rows of window 0 of 4×16
      halves.read_window(w, x, y);
      t6::scale(model.forward(t6::from_ints(x, {2, 16}), t6::from_ints(y, {2, 16})).loss, 0.5).backward();
    }
    const std::vector<t6::Tensor> params = model.parameters();
    REQUIRE(params.size() == 11);
    for (size_t i = 0; i < params.size(); ++i) {
      const std::vector<double> g = params[i].grad().to_double_vector();
      double scale = 0.0;
      int64_t zeros = 0;
      for (double v : reference[i]) scale = std::max(scale, std::fabs(v)), zeros += v == 0.0;
      CAPTURE(i);
      CHECK(zeros == 0);  // every derivative of every tensor is compared, none is 0 against 0
      for (size_t k = 0; k < g.size(); ++k) CHECK(std::fabs(g[k] - reference[i][k]) <= 1e-5 * scale + 1e-9);
    }
  }
  SUBCASE("the trainer: grad_accum 2 of batch 2 matches grad_accum 1 of batch 4 step by step") {
    t6::TrainConfig accumulated = corpus.config("accumulated", 4), single = corpus.config("single", 4);
    accumulated.data.shuffle = single.data.shuffle = false;  // so both read the same rows in the same order
    t6::T6Model start(single.model);  // random weights everywhere, so step 1's gradient is not mostly zero
    t6::Generator gen(18);
    start.fill_uniform(gen, 0.5);
    accumulated.train.init_from = single.train.init_from = corpus.dir / "start.safetensors";
    t6::save_model(start, single.train.init_from);
    accumulated.train.batch_size = 2;
    accumulated.train.grad_accum = 2;
    train(accumulated);
    train(single);
    const std::vector<nlohmann::json> a = read_metrics(accumulated.train.out_dir),
                                      b = read_metrics(single.train.out_dir);
    REQUIRE(a.size() == 5);
    REQUIRE(b.size() == 5);
    for (size_t i = 0; i < 4; ++i) {
      CAPTURE(i);
      CHECK(a[i]["loss"].get<double>() == doctest::Approx(b[i]["loss"].get<double>()).epsilon(1e-6));
      CHECK(a[i]["grad_norm"].get<double>() == doctest::Approx(b[i]["grad_norm"].get<double>()).epsilon(1e-5));
    }
  }
}

TEST_CASE("trainer: init_from starts from a safetensors model; a resumed run does not read it again") {
  Corpus corpus;
  t6::TrainConfig source = corpus.config("source", 6);
  train(source);
  const std::string start = corpus.dir / "start.safetensors";
  fs::copy_file(t6::checkpoint_model_path(source.train.out_dir, 6), start);

  t6::TrainConfig config = corpus.config("from", 2);
  config.data.shuffle = false;
  config.train.init_from = start;
  train(config);
  const t6::BatchLoader data(corpus.train, 4, 16, 256, false, 0);
  const double expected = window_loss(*t6::load_model(start), data, 0);
  CHECK(read_metrics(config.train.out_dir)[0]["loss"].get<double>() == expected);
  CHECK(expected != window_loss(t6::T6Model(config.model), data, 0));  // not a fresh initialisation

  fs::remove(start);
  config.train.steps = 3;
  CHECK(train(config, /*resume=*/true).steps_done == 3);
}

TEST_CASE("trainer: samples every sample_every steps, without changing the run") {
  Corpus corpus;
  t6::TrainConfig quiet = corpus.config("quiet", 4), talkative = corpus.config("talkative", 4);
  talkative.train.sample_every = 2;
  train(quiet);
  std::ostringstream out, err;
  t6::Trainer(talkative, false, out, err).run();
  CHECK(contains(out.str(), "step 2 sample: "));
  CHECK(contains(out.str(), "step 4 sample: "));
  CHECK_FALSE(contains(out.str(), "step 3 sample: "));
  CHECK(metrics_without_timing(talkative.train.out_dir) == metrics_without_timing(quiet.train.out_dir));
  check_same_checkpoint(quiet.train.out_dir, talkative.train.out_dir, 4);
}

TEST_CASE("trainer: keep_checkpoints keeps the newest; nothing else is left in out_dir") {
  Corpus corpus;
  t6::TrainConfig config = corpus.config("run", 9);
  config.train.save_every = 2;
  config.train.keep_checkpoints = 3;
  train(config);
  CHECK(t6::list_checkpoints(config.train.out_dir) == std::vector<int64_t>{6, 8, 9});
  std::set<std::string> files;
  for (const auto& entry : fs::directory_iterator(config.train.out_dir)) files.insert(entry.path().filename().string());
  CHECK(files == std::set<std::string>{"config.json", "loss.svg", "metrics.jsonl", "step_000006.safetensors",
                                       "step_000006.state.safetensors", "step_000008.safetensors",
                                       "step_000008.state.safetensors", "step_000009.safetensors",
                                       "step_000009.state.safetensors"});
}

TEST_CASE("trainer: Ctrl-C saves the current step and exits with 130; --resume continues as if never stopped") {
  Corpus corpus;
  t6::TrainConfig config = corpus.config("run", 1000000);
  config.train.eval_every = config.train.save_every = 1000000;
  const std::string path = corpus.config_file(config);
  const std::string metrics = config.train.out_dir + "/metrics.jsonl";
  const auto sigint_before = sigint_handler();

  // Once the first step's line is written (the trainer's handler is in place by then), Ctrl-C.
  std::thread interrupter([&] {
    std::error_code ignored;
    while (!fs::exists(metrics, ignored) || fs::file_size(metrics, ignored) == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    kill(getpid(), SIGINT);
  });
  const CommandResult run = t6_command({"train", "--config", path});
  interrupter.join();
  CHECK(run.status == 130);
  const std::vector<int64_t> saved = t6::list_checkpoints(config.train.out_dir);
  REQUIRE(saved.size() == 1);
  const int64_t stopped = saved[0];
  CHECK(stopped >= 1);
  CHECK(stopped < 1000000);
  CHECK(
      contains(run.err, t6::cat("interrupted: saved step ", stopped, " to ",
                                t6::checkpoint_model_path(config.train.out_dir, stopped), "; continue with --resume")));
  CHECK((sigint_handler() == sigint_before));  // the trainer's handler is gone again

  const int64_t total = stopped + 3;
  const CommandResult resumed =
      t6_command({"train", "--config", path, "--resume", "--set", t6::cat("train.steps=", total), "--json"});
  REQUIRE_MESSAGE(resumed.status == 0, resumed.err);
  const nlohmann::json summary = nlohmann::json::parse(resumed.out);
  CHECK(summary["steps"] == total);
  CHECK(summary["interrupted"] == false);
  CHECK(summary["out_dir"] == config.train.out_dir);

  t6::TrainConfig uninterrupted = corpus.config("reference", total);
  uninterrupted.train.eval_every = uninterrupted.train.save_every = 1000000;
  train(uninterrupted);
  CHECK(metrics_without_timing(config.train.out_dir) == metrics_without_timing(uninterrupted.train.out_dir));
  check_same_checkpoint(config.train.out_dir, uninterrupted.train.out_dir, total);
}

TEST_CASE("trainer: a diverging run stops at the non-finite loss, naming the step; the last checkpoint is good") {
  Corpus corpus;
  t6::TrainConfig config = corpus.config("run", 20);
  config.optim.lr = 1e6;  // diverges within a few steps
  config.optim.warmup_steps = 0;
  config.train.save_every = 1;
  config.train.keep_checkpoints = 100;
  const std::string path = corpus.config_file(config);
  const auto sigint_before = sigint_handler();
  const std::string message = failure(t6_command({"train", "--config", path}), "train");
  CHECK((sigint_handler() == sigint_before));

  const size_t at = message.find(" at step ");
  REQUIRE_MESSAGE(at != std::string::npos, message);
  CHECK(contains(message, "t6 train: error: the training loss became "));
  const int64_t bad_step = std::stoll(message.substr(at + 9));
  REQUIRE(bad_step >= 2);
  const std::vector<int64_t> saved = t6::list_checkpoints(config.train.out_dir);
  REQUIRE(!saved.empty());
  CHECK(saved.back() == bad_step - 1);
  CHECK(
      contains(message, t6::cat("stopped without saving. The last good checkpoint, ",
                                t6::checkpoint_model_path(config.train.out_dir, bad_step - 1), " (step ", bad_step - 1,
                                "), is intact: lower optim.lr or raise optim.warmup_steps, then --resume")));
  for (const auto& [name, p] :
       t6::load_model(t6::checkpoint_model_path(config.train.out_dir, bad_step - 1))->named_parameters())
    for (double v : p.to_double_vector()) REQUIRE(std::isfinite(v));

  // Resuming repeats the same steps, so it fails again at the same step; changed optimizer settings are
  // allowed, and noted.
  CHECK(failure(t6_command({"train", "--config", path, "--resume"}), "train") == message);
  const CommandResult lower = t6_command({"train", "--config", path, "--resume", "--set", "optim.lr=1e-3"});
  CHECK(contains(lower.err, "note: resuming with changed optimizer settings (optim.lr 1000000.0 → 0.001)"));
}

TEST_CASE("trainer: a model broken from the start stops at step 1, with no checkpoint to fall back on") {
  Corpus corpus;
  t6::TrainConfig config = corpus.config("run", 5);
  t6::T6Model broken(config.model);
  // Finite but far too large: the first forward pass overflows. (Non-finite weights are refused
  // when the checkpoint is loaded, naming the tensor.)
  broken.transformer.wte.weight.fill_(3e38);
  config.train.init_from = corpus.dir / "broken.safetensors";
  t6::save_model(broken, config.train.init_from);
  const std::string message = error_message([&] { train(config); });
  CHECK(contains(message, "the training loss became "));
  CHECK(contains(message, " at step 1 (micro-batch 0); stopped without saving. No checkpoint had been saved yet: "
                          "lower optim.lr or raise optim.warmup_steps"));
  CHECK(t6::list_checkpoints(config.train.out_dir).empty());
}

TEST_CASE("t6 eval: mean loss over N sequential batches, perplexity and bits per token, as evaluate() computes") {
  Corpus corpus;
  t6::TrainConfig config = corpus.config("run", 5);
  train(config);
  const std::string checkpoint = t6::checkpoint_model_path(config.train.out_dir, 5);
  const std::unique_ptr<t6::T6Model> model = t6::load_model(checkpoint);
  const t6::BatchLoader data(corpus.val, 4, 16, 256, false, 0);

  for (const int64_t batches : {2, 0}) {
    CAPTURE(batches);
    const CommandResult r = t6_command({"eval", "--checkpoint", checkpoint, "--data", corpus.val, "--batch-size", "4",
                                        "--seq-len", "16", "--batches", std::to_string(batches), "--json"});
    REQUIRE_MESSAGE(r.status == 0, r.err);
    const nlohmann::json j = nlohmann::json::parse(r.out);
    std::set<std::string> keys;
    for (const auto& [key, value] : j.items()) keys.insert(key);
    CHECK(keys ==
          std::set<std::string>{"loss", "perplexity", "bits_per_token", "unigram_bits_per_token", "batches", "tokens"});
    const int64_t n = batches == 0 ? data.num_windows() : batches;
    CHECK(j["batches"] == n);
    CHECK(j["tokens"] == n * 64);

    // The mean over windows 0 … n−1, each computed here directly, and evaluate()'s own number.
    double sum = 0.0;
    std::map<int32_t, int64_t> counts;
    for (int64_t w = 0; w < n; ++w) {
      sum += window_loss(*model, data, w);
      std::vector<int32_t> inputs, targets;
      data.read_window(w, inputs, targets);
      for (int32_t t : targets) ++counts[t];
    }
    const double loss = j["loss"].get<double>();
    CHECK(loss == doctest::Approx(sum / static_cast<double>(n)).epsilon(1e-12));
    CHECK(loss == t6::evaluate(*model, data, batches).mean_loss);
    CHECK(j["perplexity"].get<double>() == doctest::Approx(std::exp(loss)).epsilon(1e-12));
    CHECK(j["bits_per_token"].get<double>() == doctest::Approx(loss / std::log(2.0)).epsilon(1e-12));
    double entropy = 0.0;
    for (const auto& [token, count] : counts) {
      const double p = static_cast<double>(count) / static_cast<double>(n * 64);
      entropy -= p * std::log2(p);
    }
    CHECK(j["unigram_bits_per_token"].get<double>() == doctest::Approx(entropy).epsilon(1e-12));
  }
  const CommandResult text =
      t6_command({"eval", "--checkpoint", checkpoint, "--data", corpus.val, "--batch-size", "4"});
  CHECK(text.status == 0);
  CHECK(contains(text.out, "nats/token | perplexity "));
  CHECK(contains(text.out, " batches, "));
}

// Regression: the default train.seq_len (then 128) of a config with only a model section blocked
// evaluation and sampling of a model whose block_size is smaller.
TEST_CASE("t6 eval and t6 generate read only the model and data sections of --config") {
  Corpus corpus;
  const t6::TrainConfig config = corpus.config("unused", 1);
  nlohmann::json model_only = {{"model", config.model.to_json()}};
  model_only["model"]["block_size"] = 32;
  const std::string model_file = corpus.dir.write("model_only.json", model_only.dump());
  t6::T6Model block32(t6::read_model_config(model_file));
  const std::string bare = corpus.dir / "bare.safetensors";
  t6::save_model(block32, bare);
  const CommandResult eval = t6_command({"eval", "--checkpoint", bare, "--config", model_file, "--data", corpus.val,
                                         "--batch-size", "2", "--seq-len", "16", "--json"});
  CHECK_MESSAGE(eval.status == 0, eval.err);
  const CommandResult sample = t6_command({"generate", "--checkpoint", bare, "--config", model_file, "--prompt", "ab",
                                           "--max-new-tokens", "3", "--json"});
  CHECK_MESSAGE(sample.status == 0, sample.err);
  // A train section is still validated when training.
  model_only["train"] = {{"seq_len", 64}};
  const std::string too_long = corpus.dir.write("too_long.json", model_only.dump());
  CHECK(contains(failure(t6_command({"train", "--config", too_long}), "train"),
                 "train.seq_len (64) must be ≤ model.block_size (32)"));
  // Left out, seq_len follows the model.
  CHECK(t6::TrainConfig::from_json({{"model", {{"block_size", 32}}}}, "run.json").train.seq_len == 32);
}

TEST_CASE("t6 bench train: times training steps of a config on random tokens") {
  Corpus corpus;
  const std::string path = corpus.config_file(corpus.config("unused", 1));
  const CommandResult r = t6_command({"bench", "train", "--config", path, "--steps", "2", "--warmup", "1", "--json"});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  CHECK(j.size() == 6);
  CHECK(j["ms_per_step"].get<double>() > 0.0);
  CHECK(j["tokens_per_s"].get<double>() == doctest::Approx(64.0 / (j["ms_per_step"].get<double>() / 1000.0)));
  CHECK(j["peak_rss_mb"].get<double>() > 0.0);
  CHECK(j["mfu"].get<double>() > 0.0);  // its formula: tests/test_cpu_profile.cpp
  CHECK(j["peak_tflops"].get<double>() > 0.0);
  CHECK(j["model_flops_per_token"].get<double>() > 0.0);
  CHECK(contains(failure(t6_command({"bench", "train", "--config", path, "--steps", "0"}), "bench"),
                 "--steps must be ≥ 1"));
  CHECK(contains(failure(t6_command({"bench", "infer"}), "bench"), "the only benchmark is \"train\""));
}

TEST_CASE("trainer: resuming needs a checkpoint, the same run config, and steps left to take") {
  Corpus corpus;
  t6::TrainConfig config = corpus.config("run", 3);
  CHECK(error_message([&] { train(config, true); }) ==
        config.train.out_dir + ": no checkpoint to resume from; run without --resume to start training");
  CHECK_FALSE(fs::exists(config.train.out_dir));  // a failed resume creates nothing
  train(config);
  CHECK(error_message([&] { train(config); }) ==
        config.train.out_dir +
            ": already holds checkpoints; pass --resume to continue that run, or choose another "
            "train.out_dir");
  CHECK(error_message([&] { train(config, true); }) ==
        config.train.out_dir +
            ": the run already reached step 3 and train.steps is 3; raise train.steps (e.g. --set "
            "train.steps=6) to train further");
  t6::TrainConfig other = config;
  other.train.steps = 5;
  other.train.batch_size = 8;
  other.model.init_seed = 2;
  CHECK(error_message([&] { train(other, true); }) ==
        config.train.out_dir +
            ": the checkpoint at step 3 was written with a different config (model.init_seed 1337 "
            "→ 2, train.batch_size 4 → 8); resume with the config it was trained with, or start a "
            "new run in another out_dir");
  // Bookkeeping keys may change.
  t6::TrainConfig bookkeeping = config;
  bookkeeping.train.steps = 4;
  bookkeeping.train.eval_every = 1;
  bookkeeping.train.keep_checkpoints = 1;
  bookkeeping.data.val = "";
  CHECK(train(bookkeeping, true).steps_done == 4);
}

TEST_CASE("t6 train and t6 eval: bad input gives one clear error and a non-zero status, never a crash") {
  Corpus corpus;
  const t6::TrainConfig config = corpus.config("run", 2);
  const std::string good = corpus.config_file(config);
  auto train_error = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "train");
    return failure(t6_command(args), "train");
  };

  SUBCASE("config files") {
    CHECK(contains(train_error({"--config", corpus.dir.write("broken.json", "{\"train\": {")}), "not valid JSON"));
    CHECK(contains(train_error({"--config", corpus.dir / "absent.json"}), "cannot open the file"));
    CHECK(contains(train_error({"--config", corpus.dir.write("unknown.json", R"({"train": {"stpes": 5}})")}),
                   "unknown key \"stpes\" (did you mean \"steps\"?)"));
    CHECK(contains(train_error({"--config", good, "--set", "optim.lr=-1"}), "optim.lr must be > 0, got -1"));
    CHECK(contains(train_error({"--config", good, "--set", "optim"}), "expected section.key=value"));
    CHECK(contains(train_error({}), "t6 train needs --config FILE.json"));
  }
  SUBCASE("data") {
    CHECK(contains(train_error({"--config", good, "--set", "data.train=" + corpus.dir / "nothing_*.bin"}),
                   "no token shards match"));
    const std::string garbage = corpus.dir.write("data/junk_000000.bin", "not a shard");
    CHECK(contains(train_error({"--config", good, "--set", "data.val=" + garbage}), "junk_000000.bin"));
  }
  SUBCASE("init_from: missing, truncated, or a model of another shape") {
    CHECK(contains(train_error({"--config", good, "--set", "train.init_from=" + corpus.dir / "absent.safetensors"}),
                   "absent.safetensors"));
    train(corpus.config("source", 1));
    const std::string model = t6::checkpoint_model_path(corpus.dir / "source", 1);
    std::string bytes;
    {
      std::ifstream in(model, std::ios::binary);
      std::stringstream s;
      s << in.rdbuf();
      bytes = s.str();
    }
    const std::string truncated = corpus.dir.write("truncated.safetensors", bytes.substr(0, bytes.size() - 10));
    CHECK(contains(train_error({"--config", good, "--set", "train.init_from=" + truncated}), "truncated.safetensors"));
    const std::string garbage = corpus.dir.write("garbage.safetensors", std::string(200, '\x7f'));
    CHECK(contains(train_error({"--config", good, "--set", "train.init_from=" + garbage}), "garbage.safetensors"));
    const std::string message =
        train_error({"--config", good, "--set", "train.init_from=" + model, "--set", "model.n_embd=32"});
    CHECK(contains(message, "cannot load this checkpoint into the model"));
    CHECK(contains(message, "has shape [256, 16] but the model config needs [256, 32]"));
  }
  SUBCASE("--resume from a truncated or corrupt checkpoint") {
    train(config);
    const std::string model = t6::checkpoint_model_path(config.train.out_dir, 2);
    const std::string state = t6::checkpoint_state_path(config.train.out_dir, 2);
    const std::string resume_more = "train.steps=4";
    fs::resize_file(model, fs::file_size(model) / 2);
    CHECK(contains(train_error({"--config", good, "--resume", "--set", resume_more}), model));
    std::ofstream(state, std::ios::binary) << "\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}";
    CHECK(contains(train_error({"--config", good, "--resume", "--set", resume_more}), state));
    fs::remove(state);
    CHECK(contains(train_error({"--config", good, "--resume"}), "no checkpoint to resume from"));
  }
  SUBCASE("out_dir that cannot be created") {
    const std::string file = corpus.dir.write("file.txt", "x");
    CHECK(contains(train_error({"--config", good, "--set", "train.out_dir=" + file + "/run"}),
                   "cannot create the directory"));
  }
  SUBCASE("t6 eval") {
    train(config);
    const std::string model = t6::checkpoint_model_path(config.train.out_dir, 2);
    auto eval_error = [&](std::vector<std::string> args) {
      args.insert(args.begin(), "eval");
      return failure(t6_command(args), "eval");
    };
    CHECK(contains(eval_error({"--checkpoint", model}), "t6 eval needs --checkpoint FILE and --data GLOB"));
    CHECK(contains(eval_error({"--checkpoint", corpus.dir / "absent.safetensors", "--data", corpus.val}),
                   "absent.safetensors"));
    CHECK(contains(eval_error({"--checkpoint", model, "--data", corpus.dir / "none_*.bin"}), "no token shards match"));
    CHECK(
        contains(eval_error({"--checkpoint", model, "--data", corpus.val, "--seq-len", "17"}), "--seq-len in [1, 16]"));
    CHECK(contains(eval_error({"--checkpoint", model, "--data", corpus.val, "--batches", "-1"}),
                   "--batches must be ≥ 0"));
    CHECK(contains(eval_error({"--checkpoint", model, "--data", corpus.val, "--batch-size", "1000"}),
                   "too small for one batch"));
    fs::resize_file(model, 100);
    CHECK(contains(eval_error({"--checkpoint", model, "--data", corpus.val}), model));
  }
}
