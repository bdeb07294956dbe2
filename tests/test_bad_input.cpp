// Bad input against the real `t6` program, one row per rule of the bad-input issue: sizes, files,
// signals, the command line and messages. Each row runs the binary in a child process and asserts
// that it exits (no signal), with a non-zero status, and with one error line that names the problem.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "data_test_support.h"
#include "nn/t6_model.h"
#include "train/model_checkpoint.h"
#include "train/training_state.h"

namespace fs = std::filesystem;
using t6::testing::TempDir;

namespace {

struct Run {
  bool exited = false;  // false: ended by a signal
  int status = -1;      // the exit status, or the signal
  std::string err;
};

// Runs t6 with `args` (and `env` added to the environment), optionally calling `during(pid)` while it
// runs; stdout is discarded, stderr captured.
Run run_t6(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
           const std::function<void(pid_t)>& during = nullptr) {
  TempDir dir;
  const std::string err_path = dir / "stderr";
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int null = ::open("/dev/null", O_WRONLY);
    dup2(null, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    for (const std::string& assignment : env) putenv(const_cast<char*>(assignment.c_str()));
    std::vector<char*> argv = {const_cast<char*>(T6_BINARY)};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(T6_BINARY, argv.data());
    _exit(127);
  }
  if (during) during(pid);
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  std::ifstream in(err_path);
  std::stringstream text;
  text << in.rdbuf();
  return {WIFEXITED(wstatus), WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : WTERMSIG(wstatus), text.str()};
}

// The rule every row shares: an exit with a non-zero status, one error line naming the problem, and
// none of a library's own exception texts.
void check_refused(const Run& r, const std::string& expected) {
  CHECK_MESSAGE(r.exited, "ended by signal ", r.status);
  CHECK(r.status != 0);
  CHECK_MESSAGE(r.err.find(expected) != std::string::npos, r.err);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK_MESSAGE(r.err.find(": error: t6 ") == std::string::npos, "prefixed twice: ", r.err);
  for (const char* internal : {"json.exception", "std::", "basic_filebuf", "internal error"})
    CHECK_MESSAGE(r.err.find(internal) == std::string::npos, r.err);
}

// A small training setup: byte shards of some text, and a config of a 7k-parameter model.
struct Setup {
  TempDir dir;
  std::string config;
  std::string out_dir;
  Setup() {
    std::string text;
    for (int i = 0; i < 400; ++i) text += "the quick brown fox jumps over the lazy dog " + std::to_string(i) + "\n";
    const std::string corpus = dir.write("corpus.txt", text);
    const Run prepared = run_t6({"prepare", "--input", corpus, "--tokenizer", "byte", "--out", dir / "data"});
    REQUIRE_MESSAGE(prepared.exited, prepared.err);
    REQUIRE_MESSAGE(prepared.status == 0, prepared.err);
    out_dir = dir / "run";
    config = write_config(nlohmann::json::object());
  }
  // The config with `train` keys set over the defaults of this setup.
  std::string write_config(const nlohmann::json& train, const std::string& name = "run.json") const {
    nlohmann::json j = {
        {"model", {{"vocab_size", 256}, {"n_layer", 1}, {"n_embd", 16}, {"n_head", 2}, {"head_dim", 8},
                   {"q_rank", 2}, {"rank", 2}, {"block_size", 16}}},
        {"data", {{"train", dir / "data/train_*.bin"}, {"val", ""}}},
        {"train", {{"batch_size", 4}, {"seq_len", 16}, {"steps", 4}, {"save_every", 2}, {"sample_every", 0},
                   {"out_dir", out_dir}, {"threads", 1}}},
        {"optim", {{"warmup_steps", 1}, {"decay_steps", 4}}}};
    j["train"].update(train);
    return dir.write(name, j.dump());
  }
};

}  // namespace

TEST_CASE("bad input, sizes: overflowing products, thread counts and memory are refused up front") {
  Setup s;
  check_refused(run_t6({"train", "--config", s.config, "--set", "train.batch_size=4611686018427387904"}),
                "does not fit in 64 bits");
  check_refused(run_t6({"train", "--config", s.config, "--set", "train.threads=100000"}),
                "train.threads must be ≤ 1024, got 100000");
  check_refused(run_t6({"info"}, {"T6_NUM_THREADS=20000"}), "T6_NUM_THREADS=\"20000\" is not a thread count");
  // 6.4B parameters: far past this machine's memory, refused at once with the estimate and the keys.
  check_refused(run_t6({"train", "--config", s.config, "--set", "model.n_layer=64", "--set", "model.n_embd=8192",
                        "--set", "model.n_head=64", "--set", "model.head_dim=128"}),
                "GiB available; lower train.batch_size or train.seq_len");
  check_refused(run_t6({"bench", "train", "--config", s.config, "--set", "train.batch_size=100000000"}),
                "activations of 100000000x16 tokens");
  check_refused(run_t6({"gradcheck", "--config", T6_SOURCE_DIR "/configs/paper_small.json"}),
                "would run for hours");
}

TEST_CASE("bad input, files: configs and checkpoints are validated before use") {
  Setup s;
  check_refused(run_t6({"train", "--config", s.dir.write("dup.json", R"({"train": {"steps": 5, "steps": 6}})")}),
                "the key \"steps\" appears twice in one object");
  check_refused(run_t6({"train", "--config", s.dir.write("big.json", R"({"optim": {"lr": 1e999}})")}),
                "not valid JSON: number overflow");
  check_refused(run_t6({"train", "--config", s.dir / "data"}), "not a regular file");
  check_refused(run_t6({"prepare", "--input", s.dir / "data", "--tokenizer", "byte", "--out", s.dir / "data"}),
                "lies in the output directory");

  // A checkpoint whose 8-byte header length is one less than written: the data no longer lines up.
  t6::T6Model model(t6::read_model_config(s.config));
  const std::string good = s.dir / "good.safetensors", shifted = s.dir / "shifted.safetensors";
  t6::save_model(model, good);
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  header -= 1;
  std::memcpy(bytes.data(), &header, 8);
  std::ofstream(shifted, std::ios::binary) << bytes;
  const std::string val = s.dir / "data/train_*.bin";
  const Run r = run_t6({"eval", "--checkpoint", shifted, "--data", val});
  CHECK_MESSAGE(r.exited, r.err);
  CHECK(r.status != 0);
  CHECK(r.err.find("is invalid") != std::string::npos);

  // Non-finite weights are refused, naming the tensor.
  model.transformer.wte.weight.fill_(std::nan(""));
  const std::string nan_model = s.dir / "nan.safetensors";
  t6::save_model(model, nan_model);
  check_refused(run_t6({"eval", "--checkpoint", nan_model, "--data", val}),
                "tensor \"transformer.wte.weight\" holds a non-finite value");
}

TEST_CASE("bad input, signals: SIGTERM saves like Ctrl-C, stale temporaries go, resume skips a damaged checkpoint") {
  Setup s;
  const std::string long_run = s.write_config({{"steps", 1000000}, {"save_every", 1000000}});
  const std::string metrics = s.out_dir + "/metrics.jsonl";
  const Run stopped = run_t6({"train", "--config", long_run}, {}, [&](pid_t pid) {
    // Wait for the first step's line, but not for ever: a child that died early, or never got going,
    // fails the checks below instead of hanging the suite.
    std::error_code ignored;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
    const auto running = [pid] {  // without reaping it: run_t6 collects the status
      siginfo_t info{};
      return waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0;
    };
    while ((!fs::exists(metrics, ignored) || fs::file_size(metrics, ignored) == 0) && running() &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    kill(pid, SIGTERM);
  });
  CHECK_MESSAGE(stopped.exited, stopped.err);
  CHECK(stopped.status == 128 + SIGTERM);
  const std::vector<int64_t> saved = t6::list_checkpoints(s.out_dir);
  REQUIRE(saved.size() == 1);

  // A save killed midway leaves "<name>.tmp.<pid>" of a process that is gone; the next start removes it.
  const std::string stale = s.out_dir + "/step_000009.safetensors.tmp.999999999";
  std::ofstream(stale) << "half a file";
  // The newest checkpoint damaged: resume warns, names it, and falls back to the one before.
  const int64_t first = saved[0];
  const std::string resumable = s.write_config({{"steps", first + 2}, {"save_every", 1}}, "resume.json");
  const Run more = run_t6({"train", "--config", resumable, "--resume"});
  REQUIRE_MESSAGE(more.exited, more.err);
  REQUIRE_MESSAGE(more.status == 0, more.err);
  CHECK(!fs::exists(stale));
  CHECK(more.err.find("removed step_000009.safetensors.tmp.999999999") != std::string::npos);
  std::ofstream(t6::checkpoint_model_path(s.out_dir, first + 2), std::ios::binary | std::ios::trunc) << "garbage";
  const std::string further = s.write_config({{"steps", first + 4}, {"save_every", 1}}, "further.json");
  const Run fallback = run_t6({"train", "--config", further, "--resume"});
  CHECK_MESSAGE(fallback.exited, fallback.err);
  CHECK_MESSAGE(fallback.status == 0, fallback.err);
  CHECK(fallback.err.find(t6::cat("warning: skipping the checkpoint of step ", first + 2)) != std::string::npos);
  CHECK(fallback.err.find(t6::cat("resumed from ", t6::checkpoint_model_path(s.out_dir, first + 1))) !=
        std::string::npos);

  // A changed model shape is named before any tensor is read.
  check_refused(run_t6({"train", "--config", further, "--resume", "--set", "model.n_embd=32"}),
                "was written with a different config (model.n_embd 16 → 32)");
}

TEST_CASE("bad input, the command line: flags as --help says, values that begin with dashes") {
  Setup s;
  const Run info = run_t6({"info", "--json"});
  CHECK_MESSAGE(info.exited, info.err);
  CHECK(info.status == 0);
  check_refused(run_t6({"generate", "--checkpoint", "x", "--prompt", "--json"}),
                "--prompt needs a value (write a value that begins with \"--\" as --prompt=VALUE)");
  check_refused(run_t6({"train", "--config", s.config, "--stpes", "3"}), "unknown argument \"--stpes\"");
  check_refused(run_t6({"frobnicate"}), "unknown command \"frobnicate\"");
  check_refused(run_t6({"bench", "train", "--config", s.config, "--steps", "0"}), "t6 bench: error: --steps must be ≥ 1");
  check_refused(run_t6({"bench", "train", "--config", s.config, "--warmup", "two"}),
                "t6 bench: error: --warmup expects an integer, got \"two\"");
}
