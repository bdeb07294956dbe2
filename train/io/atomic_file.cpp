#include "train/io/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>

#include "core/error.h"

namespace t6 {

static std::string directory_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Flushes the directory entry created by rename; without it a power loss can forget the rename.
// Some file systems cannot fsync a directory (EINVAL); the rename itself has happened by then.
static void sync_directory(const std::string& path) {
  std::string directory = directory_of(path);
  int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  T6_CHECK(fd >= 0, "writing '", path, "': cannot open its directory '", directory, "' to sync it: ",
           std::strerror(errno));
  int result = ::fsync(fd);
  int error = errno;
  ::close(fd);
  T6_CHECK(result == 0 || error == EINVAL, "writing '", path, "': fsync of directory '", directory,
           "' failed: ", std::strerror(error));
}

void write_file_atomically(const std::string& path, const std::function<void(std::FILE*)>& write) {
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  std::FILE* file = std::fopen(temporary.c_str(), "wbe");  // "e": close-on-exec
  T6_CHECK(file, "cannot write '", path, "': cannot create the temporary file '", temporary, "': ",
           std::strerror(errno));

  // From here on every failure removes the temporary file, so a failed write leaves nothing behind.
  auto discard = [&] {
    if (file) std::fclose(file);
    std::remove(temporary.c_str());
  };
  auto fail = [&](const char* step, int error) {
    discard();
    throw Error(cat("cannot write '", path, "': ", step, " '", temporary, "' failed: ", std::strerror(error)));
  };
  errno = 0;
  try {
    write(file);
  } catch (...) {
    discard();
    throw;
  }
  if (std::ferror(file)) fail("writing the temporary file", errno ? errno : EIO);
  if (std::fflush(file) != 0) fail("flushing the temporary file", errno);
  if (::fsync(::fileno(file)) != 0) fail("fsync of the temporary file", errno);
  int closed = std::fclose(file);
  file = nullptr;
  if (closed != 0) fail("closing the temporary file", errno);
  if (std::rename(temporary.c_str(), path.c_str()) != 0) fail("renaming the temporary file", errno);
  sync_directory(path);
}

void write_file_atomically(const std::string& path, std::string_view bytes) {
  write_file_atomically(path, [&](std::FILE* file) {
    if (!bytes.empty()) std::fwrite(bytes.data(), 1, bytes.size(), file);
  });
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> removed;
  std::error_code error;
  if (!fs::is_directory(dir, error)) return removed;
  const std::regex temporary(R"(.+\.tmp\.(\d{1,9}))");
  for (fs::directory_iterator entry(dir, error), end; !error && entry != end; entry.increment(error)) {
    std::smatch m;
    const std::string name = entry->path().filename().string();
    if (!std::regex_match(name, m, temporary)) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(m[1]));
    const bool writer_gone = ::kill(pid, 0) != 0 && errno == ESRCH;
    if (writer_gone && fs::remove(entry->path(), error)) removed.push_back(name);
  }
  return removed;
}

}  // namespace t6
