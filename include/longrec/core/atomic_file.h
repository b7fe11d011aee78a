// Durability for files and directories written by atomic rename (stores,
// checkpoints): flush a path's data and metadata to disk.
#pragma once

#include <filesystem>
#include <functional>
#include <ostream>

namespace longrec {

// fsync(2) on a file or directory; throws SystemError naming the path.
void fsync_path(const std::filesystem::path& path);

// Writes a small file whole or not at all: `write` fills a temporary beside
// it (".<name>.tmp-<pid>", hidden from directory scans), which is flushed,
// fsynced and renamed over `path`; readers see the old file or the new one,
// never a part. On any failure the temporary is removed and SystemError names
// the path.
void write_file_atomically(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);

}  // namespace longrec
