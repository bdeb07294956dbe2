// A small command-line parser for the t6 subcommands: `--flag value`, `--flag=value`, boolean
// switches, repeatable flags and positional-free commands. Unknown flags are errors with a hint.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace t6 {

struct FlagSpec {
  std::string name;        // "--batch-size"
  bool takes_value = true;  // false: a switch such as --json
  bool repeatable = false;  // --set a=1 --set b=2, or --input f1 f2 (values until the next flag)
};

class ParsedArgs {
 public:
  // Parses `args` for `command`; throws t6::Error on unknown flags or missing values. Messages name the
  // flag, not the command: the command line prefixes every error line with "t6 COMMAND: error: " once.
  ParsedArgs(const std::string& command, const std::vector<std::string>& args, const std::vector<FlagSpec>& flags);

  bool has(const std::string& flag) const { return values_.count(flag) > 0; }
  std::string get(const std::string& flag, const std::string& fallback = "") const;
  std::vector<std::string> all(const std::string& flag) const;
  int64_t get_int(const std::string& flag, int64_t fallback) const;
  double get_double(const std::string& flag, double fallback) const;

 private:
  std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace t6
