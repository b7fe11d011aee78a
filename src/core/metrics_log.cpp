#include "longrec/core/metrics_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "longrec/core/error.h"
#include "longrec/core/log.h"

namespace longrec {

namespace {

// Bytes [offset, offset + count) of the file.
std::string read_at(int fd, off_t offset, std::size_t count, const std::filesystem::path& path) {
  std::string bytes(count, '\0');
  std::size_t done = 0;
  while (done < count) {
    const ssize_t n = ::pread(fd, bytes.data() + done, count - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw SystemError(fmt::format("{}: cannot read: {}", path.string(), std::strerror(errno)));
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  bytes.resize(done);
  return bytes;
}

// Where the file's last line begins (0 when it is the only line): the byte
// after the last '\n' before `end`.
off_t last_line_start(int fd, off_t end, const std::filesystem::path& path) {
  constexpr off_t kBlock = 1 << 16;
  for (off_t stop = end; stop > 0;) {
    const off_t begin = std::max<off_t>(0, stop - kBlock);
    const std::string block = read_at(fd, begin, static_cast<std::size_t>(stop - begin), path);
    const auto newline = block.rfind('\n');
    if (newline != std::string::npos) return begin + static_cast<off_t>(newline) + 1;
    stop = begin;
  }
  return 0;
}

// Drops a torn last line: no newline at its end (a write cut short), or not a
// JSON object (a line an older build tore and a later record completed).
void repair_last_line(int fd, const std::filesystem::path& path) {
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode) || info.st_size == 0) return;
  const off_t size = info.st_size;
  const bool complete = read_at(fd, size - 1, 1, path) == "\n";
  const off_t start = last_line_start(fd, complete ? size - 1 : size, path);
  if (complete) {
    const std::string line = read_at(fd, start, static_cast<std::size_t>(size - 1 - start), path);
    const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!record.is_discarded() && record.is_object()) return;
  }
  const std::string dropped = read_at(fd, start, static_cast<std::size_t>(std::min<off_t>(size - start, 60)), path);
  if (::ftruncate(fd, start) != 0) {
    throw SystemError(fmt::format("{}: cannot drop its torn last line: {}", path.string(), std::strerror(errno)));
  }
  log::warn("{}: dropped a torn last line ({} bytes{}, starting '{}'), left by an interrupted write", path.string(),
            size - start, complete ? ", not a JSON object" : ", no newline", dropped.substr(0, dropped.find('\n')));
}

}  // namespace

MetricsLog::MetricsLog(const std::filesystem::path& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw SystemError(fmt::format("{}: cannot open for appending: {}", path.string(), std::strerror(errno)));
  }
  try {
    repair_last_line(fd_, path_);
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsLog::write(const std::string& kind, const std::map<std::string, double>& fields) {
  nlohmann::json record;
  record["kind"] = kind;
  record["time"] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (const auto& [key, value] : fields) record[key] = value;
  const std::string line = record.dump() + '\n';
  // O_APPEND: the line goes at the end; remember where that was, to cut back to.
  const off_t before = ::lseek(fd_, 0, SEEK_END);
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = n < 0 ? errno : EIO;
      if (done > 0 && before >= 0 && ::ftruncate(fd_, before) != 0) {
        throw SystemError(fmt::format("{}: cannot append a record ({}) nor remove its partial line ({})",
                                      path_.string(), std::strerror(error), std::strerror(errno)));
      }
      throw SystemError(fmt::format("{}: cannot append a record: {}", path_.string(), std::strerror(error)));
    }
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace longrec
