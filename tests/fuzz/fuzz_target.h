// The fuzz targets of t6's parsers: each takes arbitrary bytes, feeds them to one reader, and returns
// normally whether the reader accepted them or refused them with a t6::Error. Anything else — another
// exception, a crash, a sanitizer report, a hang — is a finding.
//
// Each target is one file here. Built with clang and -DT6_FUZZ_ENTRY (CMake option T6_FUZZ), a file is
// a libFuzzer program; in the test suite (tests/test_fuzz_corpus.cpp) every file of its corpus in
// tests/fuzz/corpus/<target>/ is replayed through the same function.
#pragma once
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>
#include <unistd.h>

#include "core/error.h"

namespace t6::fuzz {

int safetensors(const uint8_t* data, size_t size);
int token_shard(const uint8_t* data, size_t size);
int config(const uint8_t* data, size_t size);
int gpt2_vocab(const uint8_t* data, size_t size);
int command_line(const uint8_t* data, size_t size);

// The readers take paths: the bytes go to a file of this process's own (name + pid, in /tmp).
inline std::string input_file(const std::string& name, std::string_view bytes) {
  const std::string path = "/tmp/t6_fuzz_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

// Runs `read`, counting a t6::Error as the reader's correct answer to bad bytes.
template <class Read>
int refuse_or_accept(Read read) {
  try {
    read();
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace t6::fuzz

#ifdef T6_FUZZ_ENTRY
#define T6_FUZZ_TARGET(target) \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return t6::fuzz::target(data, size); }
#else
#define T6_FUZZ_TARGET(target)
#endif
