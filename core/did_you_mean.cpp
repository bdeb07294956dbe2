#include "core/did_you_mean.h"

#include <algorithm>
#include <cctype>

namespace t6 {

size_t edit_distance(const std::string& a, const std::string& b) {
  // d[i][j] = distance between the first i characters of a and the first j of b; three rows suffice.
  const size_t n = a.size(), m = b.size();
  std::vector<size_t> before_previous(m + 1), previous(m + 1), current(m + 1);
  for (size_t j = 0; j <= m; ++j) previous[j] = j;
  for (size_t i = 1; i <= n; ++i) {
    current[0] = i;
    for (size_t j = 1; j <= m; ++j) {
      size_t substitution = a[i - 1] == b[j - 1] ? 0 : 1;
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + substitution});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        current[j] = std::min(current[j], before_previous[j - 2] + 1);
    }
    std::swap(before_previous, previous);
    std::swap(previous, current);
  }
  return previous[m];
}

static std::string lowercase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string lowered = lowercase(word);
  const std::string* best = nullptr;
  size_t best_distance = 0;
  for (const std::string& candidate : candidates) {
    size_t distance = edit_distance(lowered, lowercase(candidate));
    bool close = distance <= std::max<size_t>(2, word.size() / 3) && distance < word.size();
    if (close && (!best || distance < best_distance)) {
      best = &candidate;
      best_distance = distance;
    }
  }
  return best ? " (did you mean \"" + *best + "\"?)" : "";
}

std::string join_quoted(const std::vector<std::string>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ", ";
    out += '"' + values[i] + '"';
  }
  return out;
}

}  // namespace t6
