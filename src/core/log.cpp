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

ProgressBar::ProgressBar(std::string label, std::int64_t total)
    : label_(std::move(label)),
      total_(total),
      enabled_(g_rank == 0 && isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_ - std::chrono::seconds(1)) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(std::int64_t done) {
  if (!enabled_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
  last_draw_ = now;
  const double fraction = total_ > 0 ? std::min(1.0, static_cast<double>(done) / static_cast<double>(total_)) : 0.0;
  const int width = 30;
  const int filled = static_cast<int>(fraction * width);
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0.0;
  fmt::print(stderr, "\r{} [{:=<{}}{:<{}}] {:5.1f}% {}/{} eta {:.0f}s ", label_, "", filled, "", width - filled,
             100 * fraction, done, total_, eta);
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (!enabled_ || finished_) return;
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
