// Command options and INI configs.
//
// A subcommand registers typed keys in `[section]` scopes. Values come from
// built-in defaults, then `--config FILE` (INI, Boost.Program_options), then
// `--section.key=value` on the command line (highest priority). Keys of the
// subcommand's primary section may also be given without the prefix
// (`longrec prepare --input f` == `--prepare.input=f`). Unknown keys, values of
// the wrong type and values rejected by a validator fail before any work
// starts, with a ConfigError naming the key and what was expected.
//
// Numbers are parsed strictly: the whole text, no wrap-around (a value out of
// the key's type is refused, `-1` for a non-negative key too), and an integer
// written in exponent form (`1e6`) is taken only when it is exact. Every
// floating-point key refuses NaN and infinities, whatever its validator.
#pragma once

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "longrec/core/error.h"

namespace longrec {

class OptionRegistry {
 public:
  OptionRegistry(std::string command, std::string summary, std::string primary_section);

  // Registers `section.key` bound to *target, with *target's current value as default.
  template <typename T>
  void add(const std::string& section, const std::string& key, T* target, const std::string& help,
           std::function<void(const std::string&, const T&)> validate = {});

  // A check across several keys (e.g. heads dividing the width), run after
  // every single-key validator; it throws ConfigError naming the key to fix.
  void constraint(std::function<void()> check) { constraints_.push_back(std::move(check)); }

  // A boolean switch: `--section.key` alone means true; `=false` works too.
  void flag(const std::string& section, const std::string& key, bool* target, const std::string& help);

  // Parses argv (argv[0] is the subcommand name). Returns false if --help was
  // asked (help already printed). Throws ConfigError on any bad key or value.
  bool parse(int argc, const char* const* argv);

  // Resolved values, one row per key in registration order: (key, value, source).
  struct Row {
    std::string key, value, source;
  };
  std::vector<Row> resolved() const;
  // The resolved config as an aligned table (what `train` prints once).
  std::string table() const;
  // The resolved config as INI text; parsing it back gives the same values.
  std::string ini() const;

  std::string help() const;
  const std::string& command() const { return command_; }

  // Whether `section.key` was given (command line or config file), not left at its default.
  bool given(const std::string& key) const { return sources_.count(key) != 0; }
  // Where the value of `section.key` came from: the config file, "command line", set_source's, or "default".
  std::string source_of(const std::string& key) const;
  // Records where a value a constraint set came from (e.g. "model.size"), for resolved() and table().
  void set_source(const std::string& key, const std::string& source) { derived_sources_[key] = source; }

 private:
  struct Entry {
    std::string section, key, type_name;
    std::function<std::string()> format;  // current value as text
    std::function<void()> validate;       // throws ConfigError
    // Numbers: parses the given text into the target; returns what was
    // expected when the text is not a value of the target's type, else "".
    std::function<std::string(const std::string&)> assign;
  };
  std::string full_key(const std::string& section, const std::string& key) const { return section + "." + key; }
  std::vector<std::string> rewrite_primary(int argc, const char* const* argv) const;
  const Entry* find(const std::string& key) const;

  std::string command_, summary_, primary_;
  boost::program_options::options_description& section_description(const std::string& section);
  std::vector<std::pair<std::string, std::unique_ptr<boost::program_options::options_description>>> sections_;
  std::vector<std::function<void()>> constraints_;
  std::map<std::string, std::string> sources_;          // full key -> config file | "command line"
  std::map<std::string, std::string> derived_sources_;  // full key -> what set it (set_source)
  std::vector<Entry> entries_;
  boost::program_options::variables_map values_;
  std::string config_file_;
};

namespace config_detail {
template <typename T>
std::string type_name();
template <typename T>
std::string format_value(const T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    return value;
  } else if constexpr (std::is_same_v<T, bool>) {
    return value ? "true" : "false";
  } else {
    return fmt::format("{}", value);
  }
}
// Parses all of `text` into `out` (int, std::int64_t, std::uint64_t, double):
// "" when it is a value of that type, else what was expected, e.g. "an
// integer in [-2147483648, 2147483647]". Integers never wrap; "1e6" is taken
// for an integer key when exact. Doubles accept "nan" and "inf" here (the
// registry refuses non-finite values by key afterwards).
template <typename T>
std::string parse_number(const std::string& text, T& out);
}  // namespace config_detail

template <typename T>
void OptionRegistry::add(const std::string& section, const std::string& key, T* target, const std::string& help,
                         std::function<void(const std::string&, const T&)> validate) {
  namespace po = boost::program_options;
  const std::string name = full_key(section, key);
  Entry entry{section, key, config_detail::type_name<T>(), [target] { return config_detail::format_value(*target); },
              {},      {}};
  if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    // Kept as text by Program_options (whose lexical_cast wraps "-1" into a
    // huge unsigned value) and parsed strictly in parse().
    section_description(section).add_options()(
        name.c_str(), po::value<std::string>()->default_value(config_detail::format_value(*target)), help.c_str());
    entry.assign = [target](const std::string& text) { return config_detail::parse_number(text, *target); };
  } else {
    section_description(section).add_options()(
        name.c_str(), po::value<T>(target)->default_value(*target, config_detail::format_value(*target)), help.c_str());
  }
  if constexpr (std::is_floating_point_v<T>) {
    // NaN passes every `v < lo || v > hi` check: refused here for every key.
    entry.validate = [target, validate, name] {
      if (validate) validate(name, *target);
      if (!std::isfinite(*target)) throw ConfigError(name, fmt::format("got {}, expected a finite number", *target));
    };
  } else if (validate) {
    entry.validate = [target, validate, name] { validate(name, *target); };
  }
  entries_.push_back(std::move(entry));
}

// Validators; the registry passes the full key so that errors name it.
namespace check {
// Upper bounds shared by the keys of several commands. Thread pools are
// created eagerly (100000 intra-op threads hang the process); counts of steps,
// events or users stay far below int64 overflow in the products made of them.
constexpr int kMaxThreads = 1024;
constexpr std::int64_t kMaxCount = 1'000'000'000'000;

template <typename T>
using Validator = std::function<void(const std::string&, const T&)>;
// Floating-point validators refuse NaN and infinities too ("expected a finite value ...").
template <typename T>
Validator<T> at_least(T minimum) {
  return [minimum](const std::string& key, const T& v) {
    if constexpr (std::is_floating_point_v<T>) {
      if (!std::isfinite(v)) throw ConfigError(key, fmt::format("got {}, expected a finite value >= {}", v, minimum));
    }
    if (v < minimum) throw ConfigError(key, fmt::format("got {}, expected a value >= {}", v, minimum));
  };
}
template <typename T>
Validator<T> in_range(T lo, T hi) {
  return [lo, hi](const std::string& key, const T& v) {
    if constexpr (std::is_floating_point_v<T>) {
      if (!std::isfinite(v)) {
        throw ConfigError(key, fmt::format("got {}, expected a finite value in [{}, {}]", v, lo, hi));
      }
    }
    if (v < lo || v > hi) throw ConfigError(key, fmt::format("got {}, expected a value in [{}, {}]", v, lo, hi));
  };
}
Validator<std::string> one_of(std::vector<std::string> choices);
// A path that must name an existing regular file (empty allowed when optional).
Validator<std::string> existing_file(bool optional = false);
// A path a file can be written to: its directory exists (empty allowed), so
// that a long job does not fail at its very end.
Validator<std::string> writable_path();
}  // namespace check

}  // namespace longrec
