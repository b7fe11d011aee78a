// log::ProgressBar without a terminal: silent by default (as before), or one
// log line per tenth of the work with ProgressOptions::log_lines; the amounts,
// the percentage and the closing line exact.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "longrec/core/log.h"

namespace longrec {

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Runs `work` with stdout captured; the lines it printed.
template <typename Work>
std::vector<std::string> captured_lines(Work work) {
  ::testing::internal::CaptureStdout();
  work();
  return lines_of(::testing::internal::GetCapturedStdout());
}

}  // namespace

class ProgressWithoutTerminal : public ::testing::Test {
 protected:
  void SetUp() override {
    if (isatty(STDERR_FILENO) != 0) GTEST_SKIP() << "stderr is a terminal: the bar draws instead of logging";
    log::set_rank(0);
  }
};

TEST_F(ProgressWithoutTerminal, IsSilentByDefault) {
  const auto lines = captured_lines([] {
    log::ProgressBar bar("train", 100);
    for (int i = 0; i <= 100; ++i) bar.update(i);
  });
  EXPECT_TRUE(lines.empty()) << lines.front();
}

TEST_F(ProgressWithoutTerminal, LogsALinePerTenthAndNoClosingRepeat) {
  log::ProgressOptions options;
  options.log_lines = true;
  options.line_min_seconds = 0;  // no waiting: every tenth is due at once
  const auto lines = captured_lines([&] {
    log::ProgressBar bar("export", 1000, options);
    for (int i = 0; i <= 1000; ++i) bar.update(i);
    bar.finish();
  });
  ASSERT_EQ(lines.size(), 10u);
  EXPECT_EQ(lines[0].rfind("export: 100/1000 (10.0%), ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("/s, ETA "), std::string::npos) << lines[0];
  EXPECT_EQ(lines[4].rfind("export: 500/1000 (50.0%), ", 0), 0u) << lines[4];
  EXPECT_EQ(lines[9].rfind("export: 1000/1000 (100.0%), ", 0), 0u) << lines[9];
  EXPECT_NE(lines[9].find("done in 0m00s"), std::string::npos) << lines[9];
}

TEST_F(ProgressWithoutTerminal, ClosesWithALineWhenTheLastWasEarlierAndCountsBytes) {
  log::ProgressOptions options;
  options.log_lines = true;
  options.unit = log::ProgressUnit::kBytes;
  options.line_min_seconds = 0;
  options.line_every_fraction = 0.5;
  const auto lines = captured_lines([&] {
    log::ProgressBar bar("prepare", 3 << 20, options);
    bar.update(1 << 20);  // a third: not yet half
    bar.update(2 << 20);  // past half: a line
    bar.update(3 << 20);  // all: a line
    bar.finish();
  });
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].rfind("prepare: 2.00 MiB/3.00 MiB (66.7%), ", 0), 0u) << lines[0];
  EXPECT_EQ(lines[1].rfind("prepare: 3.00 MiB/3.00 MiB (100.0%), ", 0), 0u) << lines[1];

  // The last update comes too soon after a line to log its own: finish() closes with it.
  options.line_min_seconds = 0.2;
  const auto closing = captured_lines([&] {
    log::ProgressBar bar("prepare", 4, options);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    bar.update(2);  // half, after the minimum: a line
    bar.update(4);  // within the minimum of that line: none
    bar.finish();   // all done, not yet said: a line
  });
  ASSERT_EQ(closing.size(), 2u);
  EXPECT_EQ(closing[0].rfind("prepare: 2 B/4 B (50.0%), ", 0), 0u) << closing[0];
  EXPECT_EQ(closing[1].rfind("prepare: 4 B/4 B (100.0%), ", 0), 0u) << closing[1];
  EXPECT_NE(closing[1].find("done in"), std::string::npos) << closing[1];
}

TEST_F(ProgressWithoutTerminal, WaitsTheMinimumBeforeItsFirstLineAndIsQuietOffRankZero) {
  log::ProgressOptions options;
  options.log_lines = true;  // line_min_seconds = 2: a quick job logs nothing
  EXPECT_TRUE(captured_lines([&] {
                log::ProgressBar bar("prepare", 10, options);
                for (int i = 0; i <= 10; ++i) bar.update(i);
              }).empty());
  options.line_min_seconds = 0;
  log::set_rank(1);
  const auto lines = captured_lines([&] {
    log::ProgressBar bar("prepare", 10, options);
    for (int i = 0; i <= 10; ++i) bar.update(i);
  });
  log::set_rank(0);
  EXPECT_TRUE(lines.empty());
}

TEST(HumanUnits, BytesAndDurations) {
  EXPECT_EQ(log::human_bytes(512), "512 B");
  EXPECT_EQ(log::human_bytes(1536), "1.50 KiB");
  EXPECT_EQ(log::human_bytes(3.0 * (1LL << 30)), "3.00 GiB");
  EXPECT_EQ(log::human_duration(75), "1m15s");
  EXPECT_EQ(log::human_duration(3725), "1h02m");
  EXPECT_EQ(log::human_duration(-1), "?");
}

}  // namespace longrec
