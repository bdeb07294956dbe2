// `t6 experiment` end to end on a tiny byte-level corpus: the shipped CPU experiment in a few steps
// (outputs, a table row per run, parameters within 1%), resume of an interrupted experiment (finished
// runs kept, the interrupted one continued, results as if never stopped), and bad experiment configs.
// Also the parameter matching behind it (nn/parameter_matching.h) and `t6 info --match`.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data_test_support.h"
#include "nn/parameter_layout.h"
#include "nn/parameter_matching.h"
#include "train/cli/commands.h"
#include "train/cli/prepare_command.h"
#include "train/experiment_config.h"
#include "train/experiment_report.h"
#include "train/io/svg_plot.h"
#include "train/training_state.h"

using t6::testing::CommandResult;
using t6::testing::error_message;
using t6::testing::TempDir;
namespace fs = std::filesystem;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

CommandResult t6_command(const std::vector<std::string>& args) {
  return t6::testing::run_captured(t6::run_command_line, args);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The table rows of results.md (lines that start with "| " after the header and its rule).
std::vector<std::string> table_rows(const std::string& md) {
  std::vector<std::string> rows;
  std::istringstream in(md);
  std::string line;
  int seen = 0;
  while (std::getline(in, line))
    if (line.rfind("|", 0) == 0 && ++seen > 2) rows.push_back(line);
  return rows;
}

double relative_difference(const t6::ModelConfig& a, const t6::ModelConfig& b) {
  const auto pa = static_cast<double>(t6::parameter_total(a)), pb = static_cast<double>(t6::parameter_total(b));
  return std::fabs(pa - pb) / pb;
}

// Byte-level shards of random words: data/train_000000.bin (about 6000 tokens), data/val_000000.bin.
struct Corpus {
  TempDir dir;
  std::string train, val;
  Corpus() {
    const std::string a = dir.write("a.txt", t6::testing::word_text(1, 6000)),
                      b = dir.write("b.txt", t6::testing::word_text(2, 800));
    std::ostringstream out, err;
    REQUIRE(t6::run_prepare_command({"--input", a, b, "--tokenizer", "byte", "--out", dir / "data", "--val-fraction", "0.1"},
                                    out, err) == 0);
    train = dir / "data/train_*.bin";
    val = dir / "data/val_*.bin";
  }

  // Three runs of a 1-layer model (d = 32): tpa, and mha and mqa matched to it; 6 steps of 4×16.
  nlohmann::json experiment(const std::string& out_dir) const {
    return {{"out_dir", out_dir},
            {"match_parameters", true},
            {"base",
             {{"model", {{"vocab_size", 256}, {"n_layer", 1}, {"n_embd", 32}, {"n_head", 4}, {"head_dim", 8},
                         {"q_rank", 2}, {"rank", 2}, {"block_size", 16}}},
              {"data", {{"train", train}, {"val", val}}},
              {"train", {{"batch_size", 4}, {"seq_len", 16}, {"steps", 6}, {"eval_every", 2}, {"eval_batches", 2},
                         {"save_every", 2}, {"keep_checkpoints", 10}, {"sample_every", 0}}},
              {"optim", {{"lr", 1e-2}, {"warmup_steps", 2}, {"decay_steps", 6}}}}},
            {"runs", nlohmann::json::array({{{"name", "tpa"}}, {{"name", "mha"}, {"set", {{"model.attention", "mha"}}}},
                                            {{"name", "mqa"}, {"set", {{"model.attention", "mqa"}}}}})}};
  }
  std::string file(const nlohmann::json& j, const std::string& name = "experiment.json") const {
    return dir.write(name, j.dump(2));
  }
};

// metrics.jsonl without the timings, which are the only values allowed to differ between runs.
std::string metrics_without_timing(const fs::path& run_dir) {
  std::istringstream in(read_text(run_dir / "metrics.jsonl"));
  std::string line, kept;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    j.erase("tokens_per_s");
    kept += j.dump() + "\n";
  }
  return kept;
}

}  // namespace

TEST_CASE("match_parameters: the paper's small T6 and the demo model keep head_dim and come within 1%") {
  for (const char* file : {"/configs/paper_small.json", "/configs/demo.json"}) {
    const t6::ModelConfig reference = t6::read_model_config(std::string(T6_SOURCE_DIR) + file);
    for (const t6::AttentionKind kind : {t6::AttentionKind::MHA, t6::AttentionKind::GQA, t6::AttentionKind::MQA,
                                         t6::AttentionKind::TPAKVOnly}) {
      CAPTURE(file);
      CAPTURE(t6::attention_kind_names().name(kind));
      const t6::MatchedAttention m = t6::match_parameters(reference, kind);
      CHECK(m.config.attention == kind);
      CHECK(m.config.head_dim == reference.head_dim);
      CHECK(m.parameters == t6::parameter_total(m.config));
      CHECK(std::fabs(m.relative_difference()) <= 0.01);
      CHECK(relative_difference(m.config, reference) <= 0.01);
      CHECK(m.config.n_layer == reference.n_layer);
      CHECK(m.config.n_embd == reference.n_embd);
      if (kind == t6::AttentionKind::GQA) {
        CHECK(m.config.n_head % m.config.n_kv_head == 0);
        CHECK(m.config.n_kv_head > 1);
        CHECK(m.config.n_kv_head < m.config.n_head);
      }
      m.config.validate();
    }
  }
  // The paper: MHA with H = d/64 = 12 heads has the parameters of T6 small (H = 34).
  const t6::ModelConfig small = t6::read_model_config(T6_SOURCE_DIR "/configs/paper_small.json");
  CHECK(t6::match_parameters(small, t6::AttentionKind::MHA).config.n_head == 12);
}

TEST_CASE("match_parameters: a model too small for whole heads moves head_dim; an impossible target is an error") {
  t6::ModelConfig tiny;
  tiny.vocab_size = 256;
  tiny.n_layer = 1;
  tiny.n_embd = 32;
  tiny.n_head = 4;
  tiny.head_dim = 8;
  tiny.q_rank = 2;
  tiny.rank = 2;
  tiny.block_size = 16;
  const t6::MatchedAttention mha = t6::match_parameters(tiny, t6::AttentionKind::MHA);
  CHECK(std::fabs(mha.relative_difference()) <= 0.01);
  CHECK(mha.config.head_dim % 2 == 0);
  t6::ModelConfig mqa = tiny;
  mqa.attention = t6::AttentionKind::MQA;
  const std::string message = error_message([&] { t6::match_parameters(mqa, 10); });
  CHECK(contains(message, "within 1% of 10 parameters"));
  CHECK(contains(message, "give its n_head and head_dim by hand"));
}

TEST_CASE("t6 info --match: MHA, GQA and MQA at the model's parameter count, with their KV cache") {
  const CommandResult r =
      t6_command({"info", "--config", T6_SOURCE_DIR "/configs/demo.json", "--match", "--json"});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  REQUIRE(j["matched"].size() == 4);
  CHECK(j["matched"][0]["attention"] == "tpa");
  CHECK(j["matched"][0]["kv_cache_numbers_per_token_per_layer"] == 2 * 2 * (8 + 32));  // 2R(H + dh)
  for (const nlohmann::json& m : j["matched"]) CHECK(std::fabs(m["relative_difference"].get<double>()) <= 0.01);
  CHECK(j["matched"][3]["attention"] == "mqa");
  CHECK(j["matched"][3]["kv_cache_numbers_per_token_per_layer"] == 2 * 32);  // 2·dh
  const CommandResult text = t6_command({"info", "--config", T6_SOURCE_DIR "/configs/demo.json", "--match"});
  REQUIRE_MESSAGE(text.status == 0, text.err);
  CHECK(contains(text.out, "at equal parameters"));
}

TEST_CASE("t6 experiment: configs/experiments/cpu_compare.json in a few steps: outputs, a row per run, equal parameters") {
  Corpus corpus;
  const std::string out_dir = corpus.dir / "cpu_compare";
  const CommandResult r = t6_command(
      {"experiment", "--config", T6_SOURCE_DIR "/configs/experiments/cpu_compare.json", "--out-dir", out_dir, "--set",
       "data.train=" + corpus.train, "--set", "data.val=" + corpus.val, "--set", "train.steps=4", "--set",
       "train.eval_every=2", "--set", "train.eval_batches=1", "--set", "train.batch_size=2", "--set", "train.seq_len=32",
       "--set", "train.threads=1"});
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const std::vector<std::string> names = {"tpa", "mha", "gqa", "mqa"};
  for (const std::string& name : names) {
    CAPTURE(name);
    CHECK(fs::exists(fs::path(out_dir) / name / "metrics.jsonl"));
    CHECK(t6::list_checkpoints((fs::path(out_dir) / name).string()) == std::vector<int64_t>{4});
  }
  const std::string svg = read_text(fs::path(out_dir) / "curves.svg");
  CHECK(contains(svg, "training tokens"));
  for (const std::string& name : names) CHECK(contains(svg, "<polyline class=\"" + name + " ("));
  const std::string md = read_text(fs::path(out_dir) / "results.md");
  CHECK(r.out.ends_with(md));  // the table closes the output, after the runs' validation losses
  const std::vector<std::string> rows = table_rows(md);
  REQUIRE(rows.size() == names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    CHECK(rows[i].rfind("| " + names[i] + " | " + names[i] + " | ", 0) == 0);
    CHECK_FALSE(contains(rows[i], "unfinished"));
    CHECK_FALSE(contains(rows[i], "| — |"));  // every value known: loss, bits, tokens/s, wall time
  }
  CHECK(contains(rows[0], "| 160 |"));  // TPA's 2R(H + dh) = 2·2·(8 + 32)
  CHECK(contains(rows[1], "| 320 |"));  // MHA's 2·H·dh with its 5 heads
  CHECK(contains(rows[3], "| 64 |"));   // MQA's 2·dh

  // the runs differ in their attention only, and their parameter counts lie within 1% of the T6's
  const nlohmann::json record = nlohmann::json::parse(read_text(fs::path(out_dir) / "experiment.json"));
  const t6::TrainConfig tpa = t6::TrainConfig::from_json(record["runs"][0]["config"], "tpa");
  for (size_t i = 1; i < names.size(); ++i) {
    nlohmann::json config = record["runs"][i]["config"];
    const t6::TrainConfig run = t6::TrainConfig::from_json(config, names[i]);
    CHECK(relative_difference(run.model, tpa.model) <= 0.01);
    CHECK(record["runs"][i]["matched"] == true);
    config["model"] = record["runs"][0]["config"]["model"];
    config["train"]["out_dir"] = record["runs"][0]["config"]["train"]["out_dir"];
    CHECK(config == record["runs"][0]["config"]);
  }
}

TEST_CASE("t6 experiment --resume: finished runs are kept, the interrupted one continues, results as if never stopped") {
  Corpus corpus;
  const std::string whole = corpus.dir / "whole", stopped = corpus.dir / "stopped";
  const CommandResult uninterrupted = t6_command({"experiment", "--config", corpus.file(corpus.experiment(whole))});
  REQUIRE_MESSAGE(uninterrupted.status == 0, uninterrupted.err);

  // What an experiment stopped in run 2 after its checkpoint of step 2 leaves behind: run 1 done, run 2's
  // newest checkpoint at step 2 (its metrics.jsonl may run further), no run 3 and no results yet.
  fs::copy(whole, stopped, fs::copy_options::recursive);
  for (const int64_t step : {4, 6}) {
    fs::remove(t6::checkpoint_model_path(stopped + "/mha", step));
    fs::remove(t6::checkpoint_state_path(stopped + "/mha", step));
  }
  fs::remove_all(stopped + "/mqa");
  fs::remove(stopped + "/results.md");
  fs::remove(stopped + "/curves.svg");
  const auto run1_checkpoint = fs::last_write_time(t6::checkpoint_model_path(stopped + "/tpa", 6));
  const std::string run1_metrics = read_text(fs::path(stopped) / "tpa/metrics.jsonl");

  const std::string config = corpus.file(corpus.experiment(stopped), "stopped.json");
  const CommandResult again = t6_command({"experiment", "--config", config});
  CHECK(again.status == 1);
  CHECK(contains(again.err, "already holds an experiment; pass --resume"));

  const CommandResult resumed = t6_command({"experiment", "--config", config, "--resume"});
  REQUIRE_MESSAGE(resumed.status == 0, resumed.err);
  CHECK(contains(resumed.err, "run 1/3 tpa: finished earlier (step 6); skipped"));
  CHECK(contains(resumed.err, "run 2/3 mha: mha"));
  CHECK(contains(resumed.err, "resuming from step 2"));
  CHECK(fs::last_write_time(t6::checkpoint_model_path(stopped + "/tpa", 6)) == run1_checkpoint);
  CHECK(read_text(fs::path(stopped) / "tpa/metrics.jsonl") == run1_metrics);
  for (const std::string name : {"tpa", "mha", "mqa"}) {
    CAPTURE(name);
    CHECK(metrics_without_timing(fs::path(stopped) / name) == metrics_without_timing(fs::path(whole) / name));
  }
  // the same final losses in both tables (the columns of timings aside)
  const std::vector<std::string> a = table_rows(read_text(fs::path(whole) / "results.md")),
                                 b = table_rows(read_text(fs::path(stopped) / "results.md"));
  REQUIRE(a.size() == 3);
  REQUIRE(b.size() == 3);
  auto without_timing = [](const std::string& row) {  // the columns up to bits/byte
    size_t at = 0;
    for (int bar = 0; bar < 11; ++bar) at = row.find('|', at + 1);
    return row.substr(0, at);
  };
  for (size_t i = 0; i < 3; ++i) CHECK(without_timing(a[i]) == without_timing(b[i]));

  // a changed config is refused on resume, naming the run and the key
  nlohmann::json changed = corpus.experiment(stopped);
  changed["base"]["optim"]["lr"] = 5e-3;
  const CommandResult refused = t6_command({"experiment", "--config", corpus.file(changed, "changed.json"), "--resume"});
  CHECK(refused.status == 1);
  CHECK(contains(refused.err, "run \"tpa\" was started with a different config (optim.lr"));
}

TEST_CASE("t6 experiment: bad configs get one clear error naming the problem") {
  Corpus corpus;
  auto error_of = [&](const nlohmann::json& j) {
    const CommandResult r = t6_command({"experiment", "--config", corpus.file(j, "bad.json")});
    CHECK(r.status == 1);
    CHECK(r.out.empty());
    return r.err;
  };
  const nlohmann::json good = corpus.experiment(corpus.dir / "out");
  nlohmann::json j = good;
  j["run"] = j["runs"];
  CHECK(contains(error_of(j), "unknown key \"run\" (did you mean \"runs\"?)"));
  j = good;
  j["runs"] = nlohmann::json::array();
  CHECK(contains(error_of(j), "needs \"runs\": a non-empty list"));
  j = good;
  j["runs"][2]["name"] = "tpa";
  CHECK(contains(error_of(j), "runs[2]: the name \"tpa\" is taken by an earlier run"));
  j = good;
  j["runs"][1]["set"]["train.seed"] = 7;
  CHECK(contains(error_of(j), "\"train.seed\" cannot differ between runs"));
  j = good;
  j["runs"][1]["set"]["data.train"] = "other_*.bin";
  CHECK(contains(error_of(j), "\"data.train\" cannot differ between runs"));
  j = good;
  j["runs"][1]["set"]["model.block_size"] = 32;
  CHECK(contains(error_of(j), "\"model.block_size\" cannot differ between runs"));
  j = good;
  j["runs"][1]["set"]["model.atention"] = "gqa";
  CHECK(contains(error_of(j), "unknown key \"model.atention\" (did you mean \"attention\"?)"));
  j = good;
  j["runs"][1]["set"]["model.n_head"] = 3;
  CHECK(contains(error_of(j), "\"model.n_head\" comes from match_parameters for this run"));
  j = good;
  j["runs"][1]["name"] = "../up";
  CHECK(contains(error_of(j), "runs[1].name must be 1 to 64 letters"));
  j = good;
  j["base"]["train"]["out_dir"] = "somewhere";
  CHECK(contains(error_of(j), "base.train.out_dir: each run trains in out_dir/NAME"));
  j = good;
  j["base"]["data"]["val"] = "";
  CHECK(contains(error_of(j), "base.data.val is empty"));
  j = good;
  j.erase("out_dir");
  CHECK(contains(error_of(j), "needs \"out_dir\""));
  j = good;
  j["base"]["model"]["n_embd"] = -1;
  CHECK(contains(error_of(j), "n_embd must be ≥ 1"));
  CHECK_FALSE(fs::exists(corpus.dir / "out"));  // nothing was started
}

TEST_CASE("curves_svg: one labelled line per series in its own colour; token counts as K and M") {
  const std::vector<t6::NamedSeries> series = {
      {"tpa", {{0, 5.0}, {1000000, 3.0}, {2000000, 2.5}}},
      {"mha", {{0, 5.1}, {1000000, 3.2}, {2000000, 2.7}}},
      {"gqa & co", {}},
  };
  const std::string svg = t6::curves_svg(series, {"compare", "training tokens", "validation loss"});
  CHECK(contains(svg, "<polyline class=\"tpa\" fill=\"none\" stroke=\"#1f77b4\""));
  CHECK(contains(svg, "<polyline class=\"mha\" fill=\"none\" stroke=\"#ff7f0e\""));
  CHECK(contains(svg, ">gqa &amp; co (no data)</text>"));
  CHECK(contains(svg, ">training tokens</text>"));
  CHECK(contains(svg, ">validation loss</text>"));
  CHECK(contains(svg, ">1M</text>"));
  CHECK(contains(svg, ">0.5M</text>"));
}
