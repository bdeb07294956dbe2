// One exception type for every user-facing error in t6: the message names the op, file, key or shape
// that is wrong and, where there is one, the fix. Nothing in t6 reports bad input through assert().
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace t6 {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Builds a message from any streamable pieces: throw Error(cat("matmul: shapes ", a, " and ", b)).
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

#define T6_CHECK(condition, ...)                          \
  do {                                                    \
    if (!(condition)) throw ::t6::Error(::t6::cat(__VA_ARGS__)); \
  } while (0)

}  // namespace t6
