// Writing a file so that a crash, a full disk or a kill at any moment leaves either the old file or the
// complete new one at `path`, never a mix: the bytes go to a temporary file next to it, which is flushed
// to disk and then renamed over `path` (rename within one directory is atomic on POSIX).
#pragma once
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace t6 {

// Calls write(file) on "<path>.tmp.<pid>" (opened "wb" in the same directory), then fflush + fsync,
// rename over `path`, fsync of the directory. On any failure — including an exception from `write` or
// a stream error it left behind — the temporary file is removed and t6::Error names `path` and the
// errno text (an exception thrown by `write` itself propagates unchanged). A process killed midway
// leaves `path` untouched and at most a stale "<path>.tmp.<pid>" next to it. Two threads of one
// process must not write the same path at the same time: they would share the temporary file.
void write_file_atomically(const std::string& path, const std::function<void(std::FILE*)>& write);

// The same for content that is already in memory.
void write_file_atomically(const std::string& path, std::string_view bytes);

// Removes the "<name>.tmp.<pid>" files in `dir` that a killed write left behind: those whose process no
// longer runs. Returns their names. A directory that does not exist holds none.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);

}  // namespace t6
