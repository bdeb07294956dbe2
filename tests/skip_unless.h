// Test cases that need what a machine may lack (a CUDA GPU, the GPT-2 vocabulary files) are skipped,
// never passed: a body that returns early when its inputs are missing would count as a pass, and a
// run without them would look just as green. Decorate the case or suite instead:
//
//   TEST_SUITE("cuda backend" * needs_cuda()) { ... }
//   TEST_CASE("gpt2 tokenizer: known encodings" * needs_gpt2_vocab()) { ... }   (data_test_support.h)
//
// doctest then counts them as skipped in its summary, and the listener in tests/main.cpp prints each
// reason with the number of cases it skipped.
#pragma once
#include <doctest/doctest.h>

#include "core/backend.h"

namespace t6::testing {

// A doctest decorator: skip the test case (or every case of the suite) unless `available`, with
// `reason` as its description. Evaluated once, when the case registers, before main.
struct skip_unless {
  bool available;
  const char* reason;

  template <class TestCaseOrSuite>
  void fill(TestCaseOrSuite& target) const {
    if (available) return;
    target.m_skip = true;
    target.m_description = reason;
  }
};

// The GPU suites: they compare the CUDA backend with the CPU, so they need a CUDA GPU and a build
// with the CUDA backend.
inline skip_unless needs_cuda() {
  return {device_available(Device::CUDA), "no CUDA GPU here, or t6 was built without the CUDA backend"};
}

}  // namespace t6::testing
