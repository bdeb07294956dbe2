#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/error.h"
#include "train/io/atomic_file.h"

using namespace t6;
namespace fs = std::filesystem;

namespace {

// A fresh empty directory under the system temp dir, removed with everything in it at scope exit.
struct ScratchDirectory {
  fs::path path;
  ScratchDirectory() {
    std::string pattern = (fs::temp_directory_path() / "t6_atomic_XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~ScratchDirectory() { fs::remove_all(path); }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(path)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// Runs body in a forked child and returns its wait status; the child never returns into doctest.
template <class Body>
int run_in_child(Body body) {
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int code = 3;
    try {
      code = body();
    } catch (...) {
    }
    ::_exit(code);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  return status;
}

}  // namespace

TEST_CASE("write_file_atomically creates and overwrites a file, leaving no temporary behind") {
  ScratchDirectory dir;
  std::string path = (dir.path / "out.bin").string();
  std::string first("first version\0with a zero byte", 30);
  write_file_atomically(path, first);
  CHECK(read_all(path) == first);
  CHECK(dir.entries() == std::vector<std::string>{"out.bin"});

  write_file_atomically(path, [](std::FILE* file) { std::fputs("second", file); });
  CHECK(read_all(path) == "second");  // shorter than before: no stale tail
  CHECK(dir.entries() == std::vector<std::string>{"out.bin"});

  write_file_atomically(path, std::string_view());
  CHECK(fs::file_size(path) == 0);
}

TEST_CASE("write_file_atomically into a missing directory names the path and the errno text") {
  ScratchDirectory dir;
  std::string path = (dir.path / "missing" / "out.bin").string();
  try {
    write_file_atomically(path, "data");
    FAIL("expected t6::Error");
  } catch (const Error& e) {
    std::string message = e.what();
    CHECK(message.find("'" + path + "'") != std::string::npos);
    CHECK(message.find("No such file or directory") != std::string::npos);
  }
  CHECK(dir.entries().empty());
}

TEST_CASE("write_file_atomically over a directory fails at the rename and removes the temporary file") {
  ScratchDirectory dir;
  fs::create_directory(dir.path / "taken");
  std::string path = (dir.path / "taken").string();
  CHECK_THROWS_WITH_AS(write_file_atomically(path, "data"),
                       doctest::Contains("renaming the temporary file"), Error);
  CHECK(dir.entries() == std::vector<std::string>{"taken"});
}

TEST_CASE("an exception from the writer propagates unchanged and leaves the old file intact") {
  ScratchDirectory dir;
  std::string path = (dir.path / "out.bin").string();
  write_file_atomically(path, "old content");
  auto throwing_writer = [](std::FILE* file) {
    std::fputs("partial new content", file);
    throw std::runtime_error("writer gave up");
  };
  CHECK_THROWS_WITH_AS(write_file_atomically(path, throwing_writer), "writer gave up", std::runtime_error);
  CHECK(read_all(path) == "old content");
  CHECK(dir.entries() == std::vector<std::string>{"out.bin"});
}

TEST_CASE("a write error (file size limit, like a full disk) is reported and leaves the old file intact") {
  ScratchDirectory dir;
  std::string path = (dir.path / "out.bin").string();
  write_file_atomically(path, "old content");
  // The limit applies to the child only; the child reports through its exit code.
  int status = run_in_child([&] {
    ::signal(SIGXFSZ, SIG_IGN);  // get EFBIG from write() instead of being killed
    rlimit limit{1 << 20, 1 << 20};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return 4;
    std::string big(4 << 20, 'x');
    try {
      write_file_atomically(path, big);
    } catch (const Error& e) {
      return std::string(e.what()).find("File too large") != std::string::npos ? 0 : 5;
    }
    return 6;
  });
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(read_all(path) == "old content");
  CHECK(dir.entries() == std::vector<std::string>{"out.bin"});
}

TEST_CASE("a process killed in the middle of a write leaves the old file intact") {
  ScratchDirectory dir;
  std::string path = (dir.path / "checkpoint.bin").string();
  std::string old_content(1 << 20, 'o');
  write_file_atomically(path, old_content);

  int status = run_in_child([&] {
    std::string half(2 << 20, 'n');
    write_file_atomically(path, [&](std::FILE* file) {
      std::fwrite(half.data(), 1, half.size(), file);
      std::fflush(file);  // make the half-written temporary file really exist on disk
      ::raise(SIGKILL);
      std::fwrite(half.data(), 1, half.size(), file);
    });
    return 0;
  });
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  CHECK(read_all(path) == old_content);
  // The dead process's half-written temporary file is left next to it, and is all it left.
  std::vector<std::string> entries = dir.entries();
  REQUIRE(entries.size() == 2);
  CHECK(entries[0] == "checkpoint.bin");
  CHECK(entries[1].rfind("checkpoint.bin.tmp.", 0) == 0);
  CHECK(fs::file_size(dir.path / entries[1]) == (2u << 20));
}
