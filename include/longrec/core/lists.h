// Comma-separated values on the command line ("256,512,1024", "1193,661").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longrec {

// "a,b,c" -> {"a", "b", "c"}; "" -> {}.
std::vector<std::string> split_list(const std::string& text, char separator = ',');

// Integers of a comma-separated list; ConfigError naming `key` and the bad
// item otherwise ("'x' is not an integer ...").
std::vector<std::int64_t> parse_int_list(const std::string& key, const std::string& text);

}  // namespace longrec
