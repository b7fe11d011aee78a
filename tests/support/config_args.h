// Parsing a command line through an OptionRegistry in tests, and the refusal
// it gives.
#pragma once

#include <string>
#include <vector>

#include "longrec/core/config.h"

namespace longrec::testing {

// Parses `args` as `command`'s command line (argv[0] = command).
inline bool parse_args(OptionRegistry& registry, const std::string& command, const std::vector<std::string>& args) {
  std::vector<const char*> argv{command.c_str()};
  for (const auto& a : args) argv.push_back(a.c_str());
  return registry.parse(static_cast<int>(argv.size()), argv.data());
}

// The ConfigError that `parse()` throws: its key and message; an empty key when it accepts.
struct Refusal {
  std::string key, message;
};
template <typename Parse>
Refusal refusal_of(Parse&& parse) {
  try {
    parse();
  } catch (const ConfigError& e) {
    return {e.key(), e.what()};
  }
  return {};
}

}  // namespace longrec::testing
