#include "longrec/core/log.h"

#include "longrec/core/error.h"

#include <unistd.h>

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

ProgressBar::ProgressBar(std::string label, std::int64_t total) : ProgressBar(std::move(label), total, {}) {}

ProgressBar::ProgressBar(std::string label, std::int64_t total, ProgressOptions options)
    : label_(std::move(label)),
      total_(total),
      options_(std::move(options)),
      enabled_(g_rank == 0 && isatty(STDERR_FILENO) != 0),
      lines_(g_rank == 0 && !enabled_ && options_.log_every_seconds > 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(enabled_ ? start_ - std::chrono::seconds(1) : start_) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(std::int64_t done) {
  if ((!enabled_ && !lines_) || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  if (enabled_ && now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
  if (lines_ && std::chrono::duration<double>(now - last_draw_).count() < options_.log_every_seconds) return;
  last_draw_ = now;
  const double fraction = total_ > 0 ? std::min(1.0, static_cast<double>(done) / static_cast<double>(total_)) : 0.0;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0.0;
  const std::string rate =
      options_.unit.empty() || elapsed <= 0
          ? ""
          : fmt::format("{} {}/s", human_count(static_cast<double>(done) / elapsed), options_.unit);
  if (lines_) {
    write("info",
          fmt::format("{}: {}/{}{} ({:.1f}%){}, eta {:.0f}s", label_, human_count(static_cast<double>(done)),
                      human_count(static_cast<double>(total_)), options_.unit.empty() ? "" : " " + options_.unit,
                      100 * fraction, rate.empty() ? "" : ", " + rate, eta));
    return;
  }
  const int width = 30;
  const int filled = static_cast<int>(fraction * width);
  fmt::print(stderr, "\r{} [{:=<{}}{:<{}}] {:5.1f}% {}/{}{} eta {:.0f}s ", label_, "", filled, "", width - filled,
             100 * fraction, done, total_, rate.empty() ? "" : " " + rate, eta);
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (!enabled_ || finished_) {
    finished_ = true;
    return;
  }
  finished_ = true;
  fmt::print(stderr, "\r\033[K");
  std::fflush(stderr);
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
