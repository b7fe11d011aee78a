// Helpers shared by the test suites: scratch directories and small files.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace longrec::testing {

// A fresh directory under the system temp dir, removed with its contents.
class ScratchDir {
 public:
  ScratchDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("longrec-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline std::filesystem::path write_file(const std::filesystem::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  return path;
}

// Where the real public datasets live (CI has them at the same place): the
// LONGREC_SHARED_DATA environment variable when set (e.g. a directory that does
// not exist, to see the tests that need the data report "Skipped"), else
// ../shared/data next to the checkout. A test that needs a file from there
// GTEST_SKIPs when it is absent, which CTest reports as skipped, never passed.
inline std::filesystem::path shared_data() {
  if (const char* dir = std::getenv("LONGREC_SHARED_DATA"); dir != nullptr && *dir != '\0') return dir;
  return LONGREC_SHARED_DATA;
}

}  // namespace longrec::testing
