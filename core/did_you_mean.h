// Helpers for "unknown key" errors: suggest the closest allowed name, and list the allowed names.
//   throw Error(cat("config: unknown key \"", key, "\"", did_you_mean(key, keys), "; allowed: ", join_quoted(keys)));
#pragma once
#include <string>
#include <vector>

namespace t6 {

// Edit distance between a and b counting insertions, deletions, substitutions and swaps of two
// adjacent characters (optimal string alignment, the restricted Damerau–Levenshtein distance).
size_t edit_distance(const std::string& a, const std::string& b);

// Returns ` (did you mean "X"?)` where X is the candidate closest to `word`, or "" when none is close.
// Case is ignored. Close means distance <= max(2, word.size()/3) and distance < word.size() (so a
// one-letter word never "means" an unrelated one-letter key).
// Ties go to the earliest candidate.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

// "a", "b", "c" — for listing allowed values in a message. Empty input gives "".
std::string join_quoted(const std::vector<std::string>& values);

}  // namespace t6
