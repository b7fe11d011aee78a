// Logging: rank 0 prints to the terminal; every rank may also append to its
// own log file in the run directory. Progress bars draw only on a terminal.
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

namespace longrec::log {

// Which rank this process is; only rank 0 writes to stdout.
void set_rank(int rank);
int rank();
// Mirrors every message of this process into `path` (appended).
void set_file(const std::filesystem::path& path);

void write(const std::string& level, const std::string& message);

template <typename... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
  write("info", fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> format, Args&&... args) {
  write("warn", fmt::format(format, std::forward<Args>(args)...));
}

// A one-line progress bar on stderr, redrawn at most every 100 ms; silent when
// stderr is not a terminal or this is not rank 0.
class ProgressBar {
 public:
  ProgressBar(std::string label, std::int64_t total);
  ~ProgressBar();
  void update(std::int64_t done);
  void finish();

 private:
  std::string label_;
  std::int64_t total_;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// "1.23M", "456k": human-readable counts for throughput lines.
std::string human_count(double value);

}  // namespace longrec::log
