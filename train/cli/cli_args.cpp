#include "train/cli/cli_args.h"

#include <algorithm>

#include "core/did_you_mean.h"
#include "core/error.h"

namespace t6 {

ParsedArgs::ParsedArgs(const std::string& command, const std::vector<std::string>& args,
                       const std::vector<FlagSpec>& flags) {
  std::vector<std::string> names;
  for (const FlagSpec& f : flags) names.push_back(f.name);
  for (size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i], inline_value;
    const bool has_inline = name.rfind("--", 0) == 0 && name.find('=') != std::string::npos;
    if (has_inline) {
      inline_value = name.substr(name.find('=') + 1);
      name = name.substr(0, name.find('='));
    }
    auto spec = std::find_if(flags.begin(), flags.end(), [&](const FlagSpec& f) { return f.name == name; });
    T6_CHECK(spec != flags.end(), "unknown argument \"", args[i], "\"", did_you_mean(name, names),
             "; see t6 ", command, " --help");
    std::vector<std::string>& slot = values_[name];
    if (!spec->takes_value) {
      T6_CHECK(!has_inline, name, " takes no value");
      slot.push_back("true");
      continue;
    }
    T6_CHECK(spec->repeatable || slot.empty(), name, " given twice");
    if (has_inline) {
      slot.push_back(inline_value);
      continue;
    }
    T6_CHECK(i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0, name, " needs a value (write a value that begins with \"--\" as ", name, "=VALUE)");
    slot.push_back(args[++i]);
    // a repeatable flag also takes the following plain words: --input a.txt b.txt
    while (spec->repeatable && i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) slot.push_back(args[++i]);
  }
}

std::string ParsedArgs::get(const std::string& flag, const std::string& fallback) const {
  auto it = values_.find(flag);
  return it == values_.end() ? fallback : it->second.back();
}

std::vector<std::string> ParsedArgs::all(const std::string& flag) const {
  auto it = values_.find(flag);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

int64_t ParsedArgs::get_int(const std::string& flag, int64_t fallback) const {
  if (!has(flag)) return fallback;
  const std::string text = get(flag);
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  T6_CHECK(used == text.size() && !text.empty(), flag, " expects an integer, got \"", text, "\"");
  return value;
}

double ParsedArgs::get_double(const std::string& flag, double fallback) const {
  if (!has(flag)) return fallback;
  const std::string text = get(flag);
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  T6_CHECK(used == text.size() && !text.empty(), flag, " expects a number, got \"", text, "\"");
  return value;
}

}  // namespace t6
