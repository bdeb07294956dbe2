#include "train/experiment_config.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>

#include "core/did_you_mean.h"
#include "core/error.h"
#include "nn/parameter_layout.h"
#include "nn/parameter_matching.h"

namespace t6 {

namespace {

void check_keys(const nlohmann::json& j, const std::vector<std::string>& known, const std::string& where) {
  T6_CHECK(j.is_object(), where, " must be a JSON object, got ", j.dump());
  for (const auto& [key, value] : j.items())
    T6_CHECK(std::find(known.begin(), known.end(), key) != known.end(), where, ": unknown key \"", key, "\"",
             did_you_mean(key, known), "; allowed: ", join_quoted(known));
}

void check_run_name(const std::string& name, const std::string& where) {
  const bool plain = !name.empty() && name.size() <= 64 && name != "." && name != ".." &&
                     std::all_of(name.begin(), name.end(), [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
                     });
  T6_CHECK(plain, where, ".name must be 1 to 64 letters, digits, '-', '_' or '.' (it names the run's folder), got \"",
           name, "\"");
}

// Checks one "section.key" a run sets: the section must be model or optim, the key one of its table's,
// and not one that decides which tokens a run sees.
void check_run_key(const std::string& path, const std::string& where) {
  const size_t dot = path.find('.');
  const std::string section = dot == std::string::npos ? "" : path.substr(0, dot), key = path.substr(dot + 1);
  T6_CHECK(section == "model" || section == "optim", where, ": \"", path, "\" cannot differ between runs; a run may "
           "set model and optim keys only (\"model.attention\", \"optim.lr\", ...): data and train stay the base's, so "
           "every run trains on the same windows in the same order and is evaluated at the same steps. Set it in "
           "\"base\" (or with --set) for every run");
  const std::vector<std::string> keys = section == "model" ? ModelConfig::table().names() : OptimConfig::table().names();
  T6_CHECK(std::find(keys.begin(), keys.end(), key) != keys.end(), where, ": unknown key \"", path, "\"",
           did_you_mean(key, keys), "; the ", section, " keys are ", join_quoted(keys));
  T6_CHECK(path != "model.vocab_size" && path != "model.block_size", where, ": \"", path,
           "\" cannot differ between runs: it decides the token windows every run shares; set it in \"base\"");
}

ExperimentRun make_run(const nlohmann::json& spec, const nlohmann::json& base_json, const ExperimentConfig& e,
                       const std::string& where) {
  check_keys(spec, {"name", "set"}, where);
  T6_CHECK(spec.contains("name") && spec["name"].is_string(), where, " needs a \"name\" (a string: the run's folder)");
  ExperimentRun run;
  run.name = spec["name"].get<std::string>();
  check_run_name(run.name, where);
  const std::string at = cat(where, " (\"", run.name, "\")");
  run.set = spec.value("set", nlohmann::json::object());
  T6_CHECK(run.set.is_object(), at, ".set must be an object of \"section.key\": value, got ", run.set.dump());
  nlohmann::json j = base_json;
  for (const auto& [path, value] : run.set.items()) {
    check_run_key(path, at + ".set");
    j[path.substr(0, path.find('.'))][path.substr(path.find('.') + 1)] = value;
  }
  // A variant of another attention than the base's takes the heads that give the base's parameter count.
  if (!j.contains("model")) j["model"] = nlohmann::json::object();
  ModelConfig shape;
  ModelConfig::table().read(j["model"], shape, at + ": model");
  run.matched = e.match_parameters && shape.attention != e.base.model.attention;
  if (run.matched) {
    for (const char* sized : {"model.n_head", "model.head_dim", "model.n_kv_head"})
      T6_CHECK(!run.set.contains(sized), at, ".set: \"", sized, "\" comes from match_parameters for this run; remove it, "
               "or set \"match_parameters\": false and give every run's heads by hand");
    try {
      j["model"] = match_parameters(shape, parameter_total(e.base.model)).config.to_json();
    } catch (const Error& error) {
      throw Error(cat(at, ": match_parameters: ", error.what()));
    }
  }
  j["train"]["out_dir"] = (std::filesystem::path(e.out_dir) / run.name).string();
  run.config = TrainConfig::from_json(j, at);
  return run;
}

}  // namespace

ExperimentConfig ExperimentConfig::from_json(const nlohmann::json& j, const std::string& where,
                                             const std::vector<std::string>& base_overrides) {
  check_keys(j, {"description", "out_dir", "match_parameters", "base", "runs"}, where);
  ExperimentConfig e;
  if (j.contains("description")) {
    T6_CHECK(j["description"].is_string(), where, ".description must be a string");
    e.description = j["description"].get<std::string>();
  }
  T6_CHECK(j.contains("out_dir") && j["out_dir"].is_string() && !j["out_dir"].get<std::string>().empty(), where,
           " needs \"out_dir\": the folder for the runs, curves.svg and results.md (e.g. \"runs/compare\")");
  e.out_dir = j["out_dir"].get<std::string>();
  if (j.contains("match_parameters")) {
    T6_CHECK(j["match_parameters"].is_boolean(), where, ".match_parameters must be true or false");
    e.match_parameters = j["match_parameters"].get<bool>();
  }
  T6_CHECK(j.contains("base") && j["base"].is_object(), where,
           " needs \"base\": the training config every run starts from (sections model, data, train, optim)");
  nlohmann::json base = j["base"];
  for (const char* section : {"model", "data", "train", "optim"})
    T6_CHECK(!base.contains(section) || base[section].is_object(), where, ": base.", section,
             " must be a JSON object of keys, got ", base[section].dump());
  T6_CHECK(!(base.contains("train") && base["train"].is_object() && base["train"].contains("out_dir")), where,
           ": base.train.out_dir: each run trains in out_dir/NAME; remove it (and set \"out_dir\" instead)");
  for (const std::string& assignment : base_overrides) apply_override(base, assignment);
  base["train"]["out_dir"] = e.out_dir;
  e.base = TrainConfig::from_json(base, where + ": base");
  T6_CHECK(!e.base.data.val.empty(), where, ": base.data.val is empty; an experiment compares validation losses, so "
           "give it the validation shards (t6 prepare writes DIR/val_*.bin)");

  T6_CHECK(j.contains("runs") && j["runs"].is_array() && !j["runs"].empty(), where,
           " needs \"runs\": a non-empty list of {\"name\": ..., \"set\": {\"model.attention\": ...}}");
  std::set<std::string> names;
  for (size_t i = 0; i < j["runs"].size(); ++i) {
    ExperimentRun run = make_run(j["runs"][i], base, e, cat(where, ": runs[", i, "]"));
    T6_CHECK(names.insert(run.name).second, where, ": runs[", i, "]: the name \"", run.name,
             "\" is taken by an earlier run; every run needs its own name (it names its folder)");
    e.runs.push_back(std::move(run));
  }
  return e;
}

nlohmann::json ExperimentConfig::to_json() const {
  nlohmann::json runs_json = nlohmann::json::array();
  for (const ExperimentRun& run : runs)
    runs_json.push_back({{"name", run.name}, {"set", run.set}, {"matched", run.matched}, {"config", run.config.to_json()}});
  return {{"description", description}, {"out_dir", out_dir}, {"match_parameters", match_parameters},
          {"runs", runs_json}};
}

}  // namespace t6
