#include "longrec/core/lists.h"

#include <charconv>

#include <fmt/format.h>

#include "longrec/core/error.h"

namespace longrec {

std::vector<std::string> split_list(const std::string& text, char separator) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    const auto end = std::min(text.find(separator, start), text.size());
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::vector<std::int64_t> parse_int_list(const std::string& key, const std::string& text) {
  std::vector<std::int64_t> out;
  for (const auto& item : split_list(text)) {
    std::int64_t value = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size()) {
      throw ConfigError(key, fmt::format("'{}' is not an integer (expected comma-separated integers)", item));
    }
    out.push_back(value);
  }
  return out;
}

}  // namespace longrec
