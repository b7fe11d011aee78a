#include "longrec/core/log.h"

#include "longrec/core/error.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <mutex>

namespace longrec::log {

namespace {
int g_rank = 0;
std::mutex g_mutex;
std::ofstream g_file;
}  // namespace

void set_rank(int rank) { g_rank = rank; }
int rank() { return g_rank; }

void set_file(const std::filesystem::path& path) {
  std::lock_guard lock(g_mutex);
  g_file.close();
  g_file.clear();
  g_file.open(path, std::ios::app);
  if (!g_file) throw SystemError(fmt::format("{}: cannot open the log file for appending", path.string()));
}

void write(const std::string& level, const std::string& message) {
  std::lock_guard lock(g_mutex);
  if (g_rank == 0) {
    std::FILE* stream = level == "info" ? stdout : stderr;
    if (level == "info") {
      fmt::print(stream, "{}\n", message);
    } else {
      fmt::print(stream, "{}: {}\n", level, message);
    }
    std::fflush(stream);
  }
  if (g_file.is_open()) {
    g_file << '[' << level << "] " << message << '\n';
    g_file.flush();
  }
}

ProgressBar::ProgressBar(std::string label, std::int64_t total, ProgressOptions options)
    : label_(std::move(label)),
      total_(std::max<std::int64_t>(total, 0)),
      options_(options),
      draw_(isatty(STDERR_FILENO) != 0),
      enabled_(g_rank == 0 && (draw_ || options.log_lines)),
      start_(std::chrono::steady_clock::now()),
      // A bar draws at once; lines wait line_min_seconds from the start.
      last_draw_(draw_ ? start_ - std::chrono::seconds(1) : start_) {
  next_line_done_ = static_cast<std::int64_t>(std::ceil(options_.line_every_fraction * static_cast<double>(total_)));
}

ProgressBar::~ProgressBar() { finish(); }

namespace {

std::string progress_amount(std::int64_t value, ProgressUnit unit) {
  return unit == ProgressUnit::kBytes ? human_bytes(static_cast<double>(value)) : fmt::format("{}", value);
}

}  // namespace

void ProgressBar::update(std::int64_t done) {
  if (!enabled_ || finished_) return;
  done_ = std::clamp<std::int64_t>(done, 0, total_);
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  if (!draw_) {
    const double since_line = std::chrono::duration<double>(now - last_draw_).count();
    if (since_line < options_.line_min_seconds) return;
    if (done_ < next_line_done_ && since_line < options_.line_every_seconds) return;
    last_draw_ = now;
    log_line(done_, elapsed);
    return;
  }
  if (now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
  last_draw_ = now;
  const double fraction = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 0.0;
  const int width = 30;
  const int filled = static_cast<int>(fraction * width);
  const double eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0.0;
  fmt::print(stderr, "\r{} [{:=<{}}{:<{}}] {:5.1f}% {}/{} eta {} ", label_, "", filled, "", width - filled,
             100 * fraction, progress_amount(done_, options_.unit), progress_amount(total_, options_.unit),
             human_duration(eta));
  std::fflush(stderr);
}

void ProgressBar::log_line(std::int64_t done, double elapsed) {
  ++lines_;
  last_line_done_ = done;
  const double fraction = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 0.0;
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  const std::string per_second = options_.unit == ProgressUnit::kBytes ? human_bytes(rate) : human_count(rate);
  const std::string eta = done >= total_ ? fmt::format("done in {}", human_duration(elapsed))
                          : rate > 0     ? "ETA " + human_duration(static_cast<double>(total_ - done) / rate)
                                         : std::string("ETA unknown");
  write("info", fmt::format("{}: {}/{} ({:.1f}%), {}/s, {}", label_, progress_amount(done, options_.unit),
                            progress_amount(total_, options_.unit), 100 * fraction, per_second, eta));
  // The next line at the next whole step of line_every_fraction past `done`.
  const double step = options_.line_every_fraction * static_cast<double>(total_);
  next_line_done_ = step > 0 ? static_cast<std::int64_t>(std::ceil((std::floor(done / step) + 1) * step)) : total_;
}

void ProgressBar::finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  if (!draw_) {
    // A run long enough to have logged progress says when it ended.
    if (lines_ > 0 && done_ >= total_ && last_line_done_ < total_) {
      log_line(done_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    }
    return;
  }
  fmt::print(stderr, "\r\033[K");
  std::fflush(stderr);
}

std::string human_bytes(double bytes) {
  const char* suffix[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int i = 0;
  while (bytes >= 1024 && i < 5) {
    bytes /= 1024;
    ++i;
  }
  return i == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.2f} {}", bytes, suffix[i]);
}

std::string human_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<std::int64_t>(std::min(seconds, 1e12));
  return s >= 3600 ? fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60) : fmt::format("{}m{:02d}s", s / 60, s % 60);
}

std::string human_count(double value) {
  const char* suffix[] = {"", "k", "M", "G", "T"};
  int i = 0;
  while (value >= 1000 && i < 4) {
    value /= 1000;
    ++i;
  }
  return i == 0 ? fmt::format("{:.0f}", value) : fmt::format("{:.2f}{}", value, suffix[i]);
}

}  // namespace longrec::log
