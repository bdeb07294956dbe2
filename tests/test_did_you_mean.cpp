#include <doctest/doctest.h>

#include "core/did_you_mean.h"

using namespace t6;

TEST_CASE("edit_distance counts insertions, deletions, substitutions and adjacent swaps") {
  CHECK(edit_distance("", "") == 0);
  CHECK(edit_distance("abc", "") == 3);
  CHECK(edit_distance("", "abc") == 3);
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("n_head", "n_haed") == 1);  // one swap, not two substitutions
  CHECK(edit_distance("lr", "rl") == 1);
  CHECK(edit_distance("ca", "abc") == 3);          // optimal string alignment: a swapped pair is not edited again
  CHECK(edit_distance("n_layer", "n_layers") == 1);
}

TEST_CASE("did_you_mean suggests the closest candidate when it is close enough") {
  std::vector<std::string> keys = {"n_layer", "n_head", "n_embd", "head_dim", "q_rank", "rank"};
  CHECK(did_you_mean("n_layers", keys) == " (did you mean \"n_layer\"?)");
  CHECK(did_you_mean("n_haed", keys) == " (did you mean \"n_head\"?)");
  CHECK(did_you_mean("N_EMBD", keys) == " (did you mean \"n_embd\"?)");
  CHECK(did_you_mean("qrank", keys) == " (did you mean \"q_rank\"?)");
  CHECK(did_you_mean("vocab_size", keys) == "");
  CHECK(did_you_mean("x", keys) == "");
  CHECK(did_you_mean("anything", {}) == "");
}

TEST_CASE("did_you_mean's threshold grows with the word: max(2, len/3) edits") {
  // 12 letters allow 4 edits; 6 letters allow only 2.
  CHECK(did_you_mean("learningrate", {"learning_rate_x"}) == " (did you mean \"learning_rate_x\"?)");  // 3 edits
  CHECK(did_you_mean("warmup", {"warm_up_x"}) == "");                                              // 3 edits
  CHECK(did_you_mean("warmup", {"warm_up"}) == " (did you mean \"warm_up\"?)");                   // 1 edit
  // A two-letter word may not be replaced wholesale, even though 2 edits are allowed.
  CHECK(did_you_mean("ab", {"xy"}) == "");
  CHECK(did_you_mean("ab", {"ax"}) == " (did you mean \"ax\"?)");
}

TEST_CASE("did_you_mean breaks ties by candidate order") {
  CHECK(did_you_mean("cat", {"bat", "hat"}) == " (did you mean \"bat\"?)");
  CHECK(did_you_mean("cat", {"hat", "bat"}) == " (did you mean \"hat\"?)");
  CHECK(did_you_mean("cat", {"hats", "bat"}) == " (did you mean \"bat\"?)");
}

TEST_CASE("join_quoted lists values in quotes") {
  CHECK(join_quoted({}) == "");
  CHECK(join_quoted({"F32"}) == "\"F32\"");
  CHECK(join_quoted({"a", "b", "c"}) == "\"a\", \"b\", \"c\"");
}
