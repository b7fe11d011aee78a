// Appends one JSON object per line to run_dir/metrics.jsonl: training log
// intervals and evaluation results, every rank into its own file.
//
// Whole lines or none: each record is one write(2) of the whole line, and a
// write that fails (a full disk) is cut back to where the line began, so a
// reader never sees part of a record. Opening an existing file (a resumed run)
// drops a torn last line that an older build or a crash left: one without its
// newline, or one that is not a JSON object; a warning says what was dropped.
#pragma once

#include <filesystem>
#include <map>
#include <string>

namespace longrec {

class MetricsLog {
 public:
  explicit MetricsLog(const std::filesystem::path& path);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // kind: "train" | "eval"; numeric fields. Throws SystemError naming the
  // file when the line cannot be written (nothing of it stays in the file).
  void write(const std::string& kind, const std::map<std::string, double>& fields);

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

}  // namespace longrec
