#include "longrec/core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "longrec/core/error.h"

namespace longrec {

void fsync_path(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw SystemError(fmt::format("{}: cannot open to fsync: {}", path.string(), std::strerror(errno)));
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) throw SystemError(fmt::format("{}: fsync failed: {}", path.string(), std::strerror(error)));
}

void write_file_atomically(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write) {
  const auto temporary = path.parent_path() / fmt::format(".{}.tmp-{}", path.filename().string(), ::getpid());
  try {
    {
      std::ofstream out(temporary, std::ios::trunc);
      if (!out) {
        throw SystemError(
            fmt::format("{}: cannot open {} for writing: {}", path.string(), temporary.string(), std::strerror(errno)));
      }
      write(out);
      errno = 0;
      out.close();  // the last write happens here
      if (!out) {
        throw SystemError(fmt::format("{}: write failed{}", path.string(),
                                      errno != 0 ? fmt::format(": {}", std::strerror(errno)) : std::string()));
      }
    }
    fsync_path(temporary);
    std::error_code error;
    std::filesystem::rename(temporary, path, error);
    if (error) {
      throw SystemError(
          fmt::format("{}: cannot rename {} into place: {}", path.string(), temporary.string(), error.message()));
    }
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw;
  }
}

}  // namespace longrec
