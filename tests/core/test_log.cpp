// log::ProgressBar off a terminal: silent by default (as before), or a plain
// progress line at most every log_every_seconds (eval of large inputs in a
// job's log).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include "longrec/core/log.h"
#include "support/test_support.h"

namespace longrec::log {

namespace {
std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}
}  // namespace

TEST(ProgressBar, OffATerminalWritesALineAtMostEveryInterval) {
  if (isatty(STDERR_FILENO) != 0) GTEST_SKIP() << "stderr is a terminal: the bar draws instead";
  testing::ScratchDir dir;
  const auto path = dir / "log.txt";
  set_file(path);
  {
    ProgressBar silent("plain", 100);  // the original constructor: nothing off a terminal
    silent.update(50);
    silent.update(100);
  }
  {
    ProgressBar bar("eval test", 6040, ProgressOptions{"users", 0.2});
    bar.update(100);  // before the first interval: nothing
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    bar.update(3020);
    bar.update(3100);  // within the interval of the last line: nothing
    bar.finish();
    bar.update(6040);  // finished: nothing
  }
  const auto text = read_all(path);
  set_file(dir / "other.txt");
  EXPECT_EQ(text.find("plain"), std::string::npos) << text;
  EXPECT_NE(text.find("[info] eval test: 3.02k/6.04k users (50.0%), "), std::string::npos) << text;
  EXPECT_NE(text.find(" users/s, eta "), std::string::npos) << text;
  EXPECT_EQ(text.find("3.10k"), std::string::npos) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
}

}  // namespace longrec::log
