// Appends one JSON object per line to run_dir/metrics.jsonl: training log
// intervals and evaluation results, every rank into its own file.
#pragma once

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace longrec {

class MetricsLog {
 public:
  explicit MetricsLog(const std::filesystem::path& path);
  // kind: "train" | "eval"; numeric fields.
  void write(const std::string& kind, const std::map<std::string, double>& fields);

 private:
  std::ofstream out_;
};

}  // namespace longrec
