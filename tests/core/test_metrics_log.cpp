// The metrics JSONL: whole lines or none, and a torn last line dropped when a
// resumed run opens the file again.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "longrec/core/error.h"
#include "longrec/core/metrics_log.h"
#include "support/test_support.h"

namespace longrec {

namespace {

std::string contents(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Every line ends with '\n' and is a JSON object; returns their "step"s.
std::vector<double> whole_records(const std::filesystem::path& path) {
  const std::string text = contents(path);
  EXPECT_TRUE(text.empty() || text.back() == '\n') << text;
  std::vector<double> steps;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const auto record = nlohmann::json::parse(line, nullptr, false);
    EXPECT_TRUE(!record.is_discarded() && record.is_object()) << "not a whole record: " << line;
    if (!record.is_discarded()) steps.push_back(record.value("step", -1.0));
  }
  return steps;
}

}  // namespace

TEST(MetricsLog, AppendsOneWholeLinePerRecordAcrossReopens) {
  testing::ScratchDir dir;
  const auto path = dir / "metrics.jsonl";
  MetricsLog(path).write("train", {{"step", 1}, {"loss", 2.5}});
  MetricsLog(path).write("eval", {{"step", 2}});
  EXPECT_EQ(whole_records(path), (std::vector<double>{1, 2}));
}

TEST(MetricsLog, TornLastLineWithoutNewlineIsDroppedOnResume) {
  testing::ScratchDir dir;
  const auto path = dir / "metrics.jsonl";
  MetricsLog(path).write("train", {{"step", 1}});
  MetricsLog(path).write("train", {{"step", 2}});
  {
    std::ofstream out(path, std::ios::app | std::ios::binary);
    out << R"({"kind":"train","loss":3.1,"st)";  // a write cut short by a full disk
  }
  MetricsLog(path).write("train", {{"step", 3}});
  EXPECT_EQ(whole_records(path), (std::vector<double>{1, 2, 3}));
}

TEST(MetricsLog, UnparsableLastLineIsDroppedOnResume) {
  testing::ScratchDir dir;
  const auto path = dir / "metrics.jsonl";
  MetricsLog(path).write("train", {{"step", 1}});
  {
    // An older build's torn line that a newline later completed.
    std::ofstream out(path, std::ios::app | std::ios::binary);
    out << R"({"kind":"train","lo)" << '\n';
  }
  MetricsLog(path).write("train", {{"step", 2}});
  EXPECT_EQ(whole_records(path), (std::vector<double>{1, 2}));
}

TEST(MetricsLog, OnlyTornContentIsDroppedEntirely) {
  testing::ScratchDir dir;
  const auto path = testing::write_file(dir / "metrics.jsonl", R"({"kind":"tr)");
  MetricsLog(path).write("train", {{"step", 7}});
  EXPECT_EQ(whole_records(path), (std::vector<double>{7}));
}

TEST(MetricsLog, FullDeviceIsReportedAndLeavesNoPartialLine) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full on this system";
  MetricsLog log("/dev/full");  // every write fails with ENOSPC
  try {
    log.write("train", {{"step", 1}});
    FAIL() << "expected the failed write to be reported";
  } catch (const SystemError& e) {
    EXPECT_NE(std::string(e.what()).find("/dev/full: cannot append a record: No space left on device"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace longrec
