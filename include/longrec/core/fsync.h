// Durability for files and directories written by atomic rename (stores,
// checkpoints): flush a path's data and metadata to disk.
#pragma once

#include <filesystem>

namespace longrec {

// fsync(2) on a file or directory; throws SystemError naming the path.
void fsync_path(const std::filesystem::path& path);

}  // namespace longrec
