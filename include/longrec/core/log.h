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

// What a ProgressBar counts: plain counts ("1234/5000") or bytes ("1.2 GiB/3.4 GiB").
enum class ProgressUnit { kCount, kBytes };

// Options of a ProgressBar. By default it draws on a terminal only (as it
// always did); with `log_lines`, a process whose stderr is not a terminal (a
// batch job, a pipe, a CI log) logs a line instead (log::info: stdout of rank
// 0 and the log file), "prepare: 1.20 GiB/3.40 GiB (35.3%), 210 MiB/s, ETA
// 0m11s", each time `line_every_fraction` more of the total is done or
// `line_every_seconds` have passed since the last line, whichever comes first,
// but never sooner than `line_min_seconds` after the start or the last line
// (so a job of a few seconds logs nothing but its own summary).
struct ProgressOptions {
  bool log_lines = false;
  ProgressUnit unit = ProgressUnit::kCount;
  double line_every_fraction = 0.1;
  double line_every_seconds = 30;
  double line_min_seconds = 2;
};

// A one-line progress bar on stderr, redrawn at most every 100 ms, with the
// ETA from the mean rate so far; rank 0 only. Without a terminal it is silent,
// or logs a line per interval (ProgressOptions::log_lines).
class ProgressBar {
 public:
  ProgressBar(std::string label, std::int64_t total, ProgressOptions options = {});
  ~ProgressBar();
  // `done` of `total` (clamped to it); call as often as convenient: drawing
  // and logging are rate-limited here.
  void update(std::int64_t done);
  // Clears the bar; a run that logged lines logs a last one when all was done.
  void finish();

 private:
  void log_line(std::int64_t done, double elapsed);

  std::string label_;
  std::int64_t total_;
  ProgressOptions options_;
  bool draw_;  // a terminal bar (else lines, if options_.log_lines)
  bool enabled_;
  bool finished_ = false;
  std::int64_t done_ = 0;
  std::int64_t lines_ = 0;            // lines logged
  std::int64_t last_line_done_ = -1;  // `done` of the last line
  std::int64_t next_line_done_ = 0;   // the next fraction step of lines, in units of total
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// "1.20 GiB", "512 B": human-readable sizes for progress and reports.
std::string human_bytes(double bytes);
// "12m34s", "1h02m": durations for ETAs.
std::string human_duration(double seconds);

// "1.23M", "456k": human-readable counts for throughput lines.
std::string human_count(double value);

}  // namespace longrec::log
