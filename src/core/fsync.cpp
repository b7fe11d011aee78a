#include "longrec/core/fsync.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

}  // namespace longrec
