// One declaration per config key: its name, the field it fills, its type and allowed values, one help
// line, and what a resumed run may do with it. Reading (unknown keys with a "did you mean" hint, wrong
// JSON types, out-of-range values, each naming the key), writing, the resume check and the key
// reference in the README all come from the table, so a key is spelled exactly once. Defaults are the
// config struct's own member initialisers.
//
//   static const ConfigTable<OptimConfig> table = ConfigTable<OptimConfig>()
//       .number("lr", &OptimConfig::lr, NumberRange::above(0), "peak learning rate")
//       .choice("schedule", &OptimConfig::schedule, schedule_names(), "decay after the warm-up");
//
// Constraints between keys (min_lr ≤ lr, seq_len ≤ block_size) stay in the config's validate().
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/did_you_mean.h"
#include "core/enum_names.h"
#include "core/error.h"

namespace t6 {

// What a resumed run may do with a key whose value differs from the one its checkpoint was trained with.
enum class OnResume : uint8_t {
  MustMatch,  // the key decides what the run computes
  MayChange,  // bookkeeping: where to write, how often to evaluate, how many threads
  Noted,      // a deliberate change (a lower lr after a divergence): allowed, and the run says so
};

struct IntegerRange {
  int64_t low = std::numeric_limits<int64_t>::min(), high = std::numeric_limits<int64_t>::max();
  std::string note;  // why the bound is there, appended to the message
  static IntegerRange at_least(int64_t low, std::string note = "") { return {low, std::numeric_limits<int64_t>::max(), std::move(note)}; }
  static IntegerRange within(int64_t low, int64_t high, std::string note = "") { return {low, high, std::move(note)}; }
};

struct NumberRange {
  double low = -INFINITY, high = INFINITY;
  bool low_open = false, high_open = false;  // open: the bound itself is excluded
  std::string note;
  static NumberRange at_least(double low, std::string note = "") { return {low, INFINITY, false, false, std::move(note)}; }
  static NumberRange above(double low) { return {low, INFINITY, true, false, ""}; }
  static NumberRange half_open(double low, double high) { return {low, high, false, true, ""}; }  // [low, high)
};

template <class Config>
class ConfigTable {
 public:
  struct Key {
    std::string name, allowed, help;  // allowed: "integer ≥ 1", "\"cpu\" or \"cuda\"", … (for the reference)
    OnResume on_resume;
    std::function<void(const nlohmann::json& value, Config& out, const std::string& key_path)> read;
    std::function<nlohmann::json(const Config&)> write;
  };

  ConfigTable& integer(const char* name, int64_t Config::*field, IntegerRange range, const char* help,
                       OnResume on_resume = OnResume::MustMatch) {
    std::string allowed = range.high == std::numeric_limits<int64_t>::max()
                              ? cat("integer ≥ ", range.low)
                              : cat("integer in [", range.low, ", ", range.high, "]");
    return add({name, allowed, help, on_resume,
                [field, range](const nlohmann::json& v, Config& c, const std::string& key) {
                  const bool too_big = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX);
                  T6_CHECK(v.is_number_integer() && !too_big, key, " must be an integer (below 2^63), got ", v.dump());
                  const int64_t x = v.get<int64_t>();
                  const std::string note = range.note.empty() ? "" : " (" + range.note + ")";
                  T6_CHECK(x >= range.low, key, " must be ≥ ", range.low, note, ", got ", x);
                  T6_CHECK(x <= range.high, key, " must be ≤ ", range.high, note, ", got ", x);
                  c.*field = x;
                },
                [field](const Config& c) { return nlohmann::json(c.*field); }});
  }

  ConfigTable& seed(const char* name, uint64_t Config::*field, const char* help,
                    OnResume on_resume = OnResume::MustMatch) {
    return add({name, "integer in [0, 2^64)", help, on_resume,
                [field](const nlohmann::json& v, Config& c, const std::string& key) {
                  T6_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0), key,
                           " must be a non-negative integer, got ", v.dump());
                  c.*field = v.get<uint64_t>();
                },
                [field](const Config& c) { return nlohmann::json(c.*field); }});
  }

  ConfigTable& number(const char* name, double Config::*field, NumberRange range, const char* help,
                      OnResume on_resume = OnResume::MustMatch) {
    const std::string interval = cat(range.low_open ? "(" : "[", range.low, ", ", range.high, range.high_open ? ")" : "]");
    const std::string allowed = std::isinf(range.high) ? cat("number ", range.low_open ? "> " : "≥ ", range.low)
                                                       : cat("number in ", interval);
    return add({name, allowed, help, on_resume,
                [field, range, interval](const nlohmann::json& v, Config& c, const std::string& key) {
                  T6_CHECK(v.is_number(), key, " must be a number, got ", v.dump());
                  const double x = v.get<double>();
                  const bool low_ok = range.low_open ? x > range.low : x >= range.low;
                  const bool high_ok = range.high_open ? x < range.high : x <= range.high;
                  const std::string note = range.note.empty() ? "" : " (" + range.note + ")";
                  if (std::isinf(range.high)) {
                    T6_CHECK(low_ok, key, " must be ", range.low_open ? "> " : "≥ ", range.low, note, ", got ", x);
                  } else {
                    T6_CHECK(low_ok && high_ok, key, " must lie in ", interval, note, ", got ", x);
                  }
                  c.*field = x;
                },
                [field](const Config& c) { return nlohmann::json(c.*field); }});
  }

  // A string; `may_be_empty` false rejects "".
  ConfigTable& text(const char* name, std::string Config::*field, const char* help,
                    OnResume on_resume = OnResume::MustMatch, bool may_be_empty = true) {
    return add({name, may_be_empty ? "string" : "non-empty string", help, on_resume,
                [field, may_be_empty](const nlohmann::json& v, Config& c, const std::string& key) {
                  T6_CHECK(v.is_string(), key, " must be a string, got ", v.dump());
                  T6_CHECK(may_be_empty || !v.get<std::string>().empty(), key, " must not be empty");
                  c.*field = v.get<std::string>();
                },
                [field](const Config& c) { return nlohmann::json(c.*field); }});
  }

  ConfigTable& flag(const char* name, bool Config::*field, const char* help, OnResume on_resume = OnResume::MustMatch) {
    return add({name, "true or false", help, on_resume,
                [field](const nlohmann::json& v, Config& c, const std::string& key) {
                  T6_CHECK(v.is_boolean(), key, " must be true or false, got ", v.dump());
                  c.*field = v.get<bool>();
                },
                [field](const Config& c) { return nlohmann::json(c.*field); }});
  }

  template <class E>
  ConfigTable& choice(const char* name, E Config::*field, const EnumNames<E>& names, const char* help,
                      OnResume on_resume = OnResume::MustMatch) {
    return add({name, join_quoted(names.names()), help, on_resume,
                [field, &names](const nlohmann::json& v, Config& c, const std::string& key) {
                  T6_CHECK(v.is_string(), key, " must be a string, one of ", join_quoted(names.names()), ", got ",
                           v.dump());
                  c.*field = names.parse(v.get<std::string>(), key);
                },
                [field, &names](const Config& c) { return nlohmann::json(names.name(c.*field)); }});
  }

  // Reads the keys present in `j` over the values already in `out`. `where` names the section in
  // messages ("run.json: train"): "run.json: train.steps must be ≥ 1, got 0".
  void read(const nlohmann::json& j, Config& out, const std::string& where) const {
    T6_CHECK(j.is_object(), where, " must be a JSON object, got ", j.dump());
    for (const auto& [name, value] : j.items()) {
      const Key* key = find(name);
      T6_CHECK(key != nullptr, where, ": unknown key \"", name, "\"", did_you_mean(name, names()),
               "; allowed keys: ", join_quoted(names()));
      key->read(value, out, where + "." + name);
    }
  }
  nlohmann::json write(const Config& c) const {
    nlohmann::json j = nlohmann::json::object();
    for (const Key& key : keys_) j[key.name] = key.write(c);
    return j;
  }
  const std::vector<Key>& keys() const { return keys_; }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const Key& key : keys_) out.push_back(key.name);
    return out;
  }
  const Key* find(const std::string& name) const {
    for (const Key& key : keys_)
      if (key.name == name) return &key;
    return nullptr;
  }

 private:
  ConfigTable& add(Key key) {
    keys_.push_back(std::move(key));
    return *this;
  }
  std::vector<Key> keys_;
};

}  // namespace t6
