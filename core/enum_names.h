// The spelling of an enumeration in configs, flags and messages: each value's name, listed once.
// Text is parsed into the enum where it enters t6 (a config key, a flag), so the rest of the code
// compares enum values, never strings.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/did_you_mean.h"
#include "core/error.h"

namespace t6 {

template <class E>
class EnumNames {
 public:
  EnumNames(std::initializer_list<std::pair<E, const char*>> entries) : entries_(entries.begin(), entries.end()) {}

  const char* name(E value) const {
    for (const auto& [e, text] : entries_)
      if (e == value) return text;
    return "?";
  }
  std::optional<E> find(const std::string& text) const {
    for (const auto& [e, name] : entries_)
      if (text == name) return e;
    return std::nullopt;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& entry : entries_) out.emplace_back(entry.second);
    return out;
  }
  // `what` names the key or flag in the message: `train.device must be one of "cpu", "cuda", got "gpu"`.
  E parse(const std::string& text, const std::string& what) const {
    if (const std::optional<E> e = find(text)) return *e;
    throw Error(cat(what, " must be one of ", join_quoted(names()), ", got \"", text, "\"", did_you_mean(text, names())));
  }

 private:
  std::vector<std::pair<E, const char*>> entries_;
};

}  // namespace t6
