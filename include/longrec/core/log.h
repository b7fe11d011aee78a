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
// this is not rank 0. When stderr is not a terminal it is silent too, unless
// options.log_every_seconds > 0: then a plain line goes to the log (log::info)
// at most that often, "eval test: 2.05k/6.04k users (33.9%), 1.23k users/s, eta 3s",
// so that a job's log shows where a long pass is (a pass shorter than the
// interval prints nothing).
struct ProgressOptions {
  std::string unit;              // "users": adds a rate ("1.23k users/s") to the bar and the lines
  double log_every_seconds = 0;  // > 0: the line off a terminal, at most this often
};

class ProgressBar {
 public:
  ProgressBar(std::string label, std::int64_t total);
  ProgressBar(std::string label, std::int64_t total, ProgressOptions options);
  ~ProgressBar();
  void update(std::int64_t done);
  void finish();

 private:
  std::string label_;
  std::int64_t total_;
  ProgressOptions options_;
  bool enabled_;  // draws the bar (a terminal)
  bool lines_;    // writes the lines (no terminal, log_every_seconds > 0)
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// "1.23M", "456k": human-readable counts for throughput lines.
std::string human_count(double value);

}  // namespace longrec::log
