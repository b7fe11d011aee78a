#include "longrec/core/config.h"

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <fmt/ranges.h>

namespace longrec {

namespace po = boost::program_options;

namespace config_detail {
template <>
std::string type_name<std::string>() {
  return "a string";
}
template <>
std::string type_name<bool>() {
  return "true or false";
}
template <>
std::string type_name<int>() {
  return "an integer";
}
template <>
std::string type_name<std::int64_t>() {
  return "an integer";
}
template <>
std::string type_name<std::uint64_t>() {
  return "a non-negative integer";
}
template <>
std::string type_name<double>() {
  return "a number";
}

namespace {

template <typename T>
std::string parse_integer(const std::string& text, T& out) {
  using limits = std::numeric_limits<T>;
  const std::string range = fmt::format("{} in [{}, {}]", type_name<T>(), limits::min(), limits::max());
  const char* end = text.data() + text.size();
  T value{};
  const auto [stop, ec] = std::from_chars(text.data(), end, value);
  if (ec == std::errc() && stop == end && !text.empty()) {
    out = value;
    return "";
  }
  if (ec == std::errc::result_out_of_range && stop == end) return range;
  // "1e9", "+5", "2.5e3": taken when the value is an integer the type holds.
  // Digits, signs, '.' and exponents only (strtold would also read hex, nan, inf).
  if (text.empty() || text.find_first_not_of("0123456789+-.eE") != std::string::npos) return type_name<T>();
  errno = 0;
  char* parsed_end = nullptr;
  const long double v = std::strtold(text.c_str(), &parsed_end);
  if (parsed_end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(v)) {
    return errno == ERANGE ? range : type_name<T>();
  }
  if (v != std::floor(v)) return type_name<T>();
  // [min, max] of every integer type here is exact in a long double (64-bit mantissa on x86-64).
  if (v < static_cast<long double>(limits::min()) || v > static_cast<long double>(limits::max())) return range;
  out = static_cast<T>(v);
  return "";
}

}  // namespace

template <>
std::string parse_number<int>(const std::string& text, int& out) {
  return parse_integer(text, out);
}
template <>
std::string parse_number<std::int64_t>(const std::string& text, std::int64_t& out) {
  return parse_integer(text, out);
}
template <>
std::string parse_number<std::uint64_t>(const std::string& text, std::uint64_t& out) {
  return parse_integer(text, out);
}
template <>
std::string parse_number<double>(const std::string& text, double& out) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text.front()))) return type_name<double>();
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return type_name<double>();
  // Overflow (1e999) is refused; underflow to 0 or a denormal is a number.
  if (errno == ERANGE && std::isinf(v)) {
    return fmt::format("a number in [{}, {}]", -std::numeric_limits<double>::max(), std::numeric_limits<double>::max());
  }
  out = v;
  return "";
}
}  // namespace config_detail

OptionRegistry::OptionRegistry(std::string command, std::string summary, std::string primary_section)
    : command_(std::move(command)), summary_(std::move(summary)), primary_(std::move(primary_section)) {}

po::options_description& OptionRegistry::section_description(const std::string& section) {
  for (auto& [name, description] : sections_) {
    if (name == section) return *description;
  }
  const std::string title = section == primary_ ? fmt::format("[{}] (prefix '{}.' optional)", section, section)
                                                : fmt::format("[{}]", section);
  sections_.emplace_back(section, std::make_unique<po::options_description>(title, 100, 50));
  return *sections_.back().second;
}

void OptionRegistry::flag(const std::string& section, const std::string& key, bool* target, const std::string& help) {
  const std::string name = full_key(section, key);
  section_description(section).add_options()(
      name.c_str(), po::value<bool>(target)->default_value(*target, *target ? "true" : "false")->implicit_value(true),
      help.c_str());
  entries_.push_back(Entry{section,
                           key,
                           config_detail::type_name<bool>(),
                           [target] { return std::string(*target ? "true" : "false"); },
                           {},
                           {}});
}

const OptionRegistry::Entry* OptionRegistry::find(const std::string& key) const {
  for (const auto& e : entries_) {
    if (full_key(e.section, e.key) == key) return &e;
  }
  return nullptr;
}

std::vector<std::string> OptionRegistry::rewrite_primary(int argc, const char* const* argv) const {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) == 0 && arg.size() > 2) {
      const auto eq = arg.find('=');
      // `--skip-bad-lines` and `--skip_bad_lines` name the same key.
      std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      std::replace(name.begin(), name.end(), '-', '_');
      arg = "--" + name + (eq == std::string::npos ? "" : arg.substr(eq));
      if (name.find('.') == std::string::npos && find(full_key(primary_, name)) != nullptr) {
        arg = "--" + full_key(primary_, name) + (eq == std::string::npos ? "" : arg.substr(eq));
      }
    }
    // Program_options refuses `--key=` (an empty value): pass it as `--key ""`.
    if (arg.rfind("--", 0) == 0 && arg.back() == '=') {
      arg.pop_back();
      args.push_back(std::move(arg));
      args.emplace_back();
      continue;
    }
    args.push_back(std::move(arg));
  }
  return args;
}

namespace {

// Line of `key` inside `[section]` of an INI file, for error messages; 0 if not found.
int ini_line_of(const std::string& file, const std::string& full_key) {
  std::ifstream in(file);
  std::string line, section;
  for (int number = 1; std::getline(in, line); ++number) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#' || line[first] == ';') continue;
    if (line[first] == '[') {
      section = line.substr(first + 1, line.find(']') - first - 1);
      continue;
    }
    std::string key = line.substr(first, line.find('=') - first);
    key.erase(key.find_last_not_of(" \t") + 1);
    if ((section.empty() ? key : section + "." + key) == full_key) return number;
  }
  return 0;
}

// Program_options' error_with_option_name::what() substitutes its %value% /
// %canonical_option% placeholders in a loop that never ends when the
// substituted text holds a placeholder itself (found by tests/fuzz/fuzz_config:
// an argument containing "%value%" hung `longrec`). Messages for those errors
// are built here from the error's type and option name; what() is never called.
std::string describe(const po::error& e) {
  const auto* named = dynamic_cast<const po::error_with_option_name*>(&e);
  if (named == nullptr) return e.what();
  const std::string option = named->get_option_name();
  if (dynamic_cast<const po::multiple_occurrences*>(&e)) return fmt::format("{} is given more than once", option);
  if (dynamic_cast<const po::ambiguous_option*>(&e))
    return fmt::format("{} is ambiguous (it matches several keys)", option);
  if (dynamic_cast<const po::required_option*>(&e)) return fmt::format("{} is required", option);
  if (const auto* v = dynamic_cast<const po::validation_error*>(&e)) {
    switch (v->kind()) {
      case po::validation_error::multiple_values_not_allowed:
        return fmt::format("{} takes one value", option);
      case po::validation_error::at_least_one_value_required:
        return fmt::format("{} needs a value", option);
      case po::validation_error::invalid_bool_value:
        return fmt::format("{} expects true or false", option);
      default:
        return fmt::format("{} has an invalid value", option);
    }
  }
  if (const auto* s = dynamic_cast<const po::invalid_syntax*>(&e)) {
    switch (s->kind()) {
      case po::invalid_syntax::missing_parameter:
        return fmt::format("{} needs a value", option);
      case po::invalid_syntax::extra_parameter:
        return fmt::format("{} takes no value", option);
      case po::invalid_syntax::unrecognized_line:
        return "a line that is neither [section] nor key = value";
      default:
        return fmt::format("{}: malformed option syntax", option);
    }
  }
  return fmt::format("{}: cannot be parsed", option);
}

}  // namespace

bool OptionRegistry::parse(int argc, const char* const* argv) {
  po::options_description generic("General");
  generic.add_options()("help,h", "print this help with every key and its default")(
      "config", po::value<std::string>(), "INI file with [section] key = value lines");
  po::options_description all;
  all.add(generic);
  for (auto& [name, description] : sections_) all.add(*description);

  const auto args = rewrite_primary(argc, argv);
  const auto key_of = [](const po::error_with_option_name& e) {
    std::string key = e.get_option_name();
    while (!key.empty() && key.front() == '-') key.erase(0, 1);
    return key.substr(0, key.find('='));
  };
  const auto expected = [this](const std::string& key) {
    const Entry* e = find(key);
    return e ? e->type_name : std::string("a valid value");
  };

  // Command line first: Program_options keeps the first value stored per key,
  // so the command line overrides the config file.
  try {
    po::parsed_options parsed = po::command_line_parser(args).options(all).run();
    // Without a positional description Program_options hands stray words
    // (`longrec train foo`) back unnamed, and store() drops them silently.
    for (const auto& option : parsed.options) {
      if (!option.string_key.empty()) continue;
      throw ConfigError("(command line)",
                        fmt::format("unexpected argument '{}': `longrec {}` takes no positional arguments; use "
                                    "--section.key=value (see `longrec {} --help`)",
                                    option.original_tokens.empty() ? std::string() : option.original_tokens.front(),
                                    command_, command_));
    }
    // A key given twice on the command line: the last value wins (wrappers append
    // their overrides); twice in one INI file stays an error (below).
    std::map<std::string, std::size_t> last;
    for (std::size_t i = 0; i < parsed.options.size(); ++i) last[parsed.options[i].string_key] = i;
    std::vector<po::option> kept;
    for (std::size_t i = 0; i < parsed.options.size(); ++i) {
      if (last[parsed.options[i].string_key] == i) kept.push_back(parsed.options[i]);
    }
    parsed.options = std::move(kept);
    po::store(parsed, values_);
    for (const auto& option : parsed.options) sources_[option.string_key] = "command line";
  } catch (const po::unknown_option& e) {
    throw ConfigError(key_of(e),
                      fmt::format("unknown option for `longrec {}` (see `longrec {} --help`)", command_, command_));
  } catch (const po::invalid_option_value& e) {
    throw ConfigError(
        key_of(e), fmt::format("invalid value on the command line: {}; expected {}", describe(e), expected(key_of(e))));
  } catch (const po::too_many_positional_options_error&) {
    throw ConfigError("(positional)",
                      fmt::format("`longrec {}` takes no positional arguments; use --key=value", command_));
  } catch (const po::error_with_option_name& e) {
    throw ConfigError(key_of(e), describe(e));
  } catch (const po::error& e) {
    throw ConfigError("(command line)", describe(e));
  }

  if (values_.count("help")) {
    fmt::print("{}", help());
    return false;
  }

  if (values_.count("config")) {
    config_file_ = values_["config"].as<std::string>();
    std::error_code ec;
    // An ifstream opens a directory without error and then reads nothing.
    if (std::filesystem::is_directory(config_file_, ec)) {
      throw ConfigError("config", fmt::format("'{}' is a directory, expected an INI file", config_file_));
    }
    std::ifstream in(config_file_);
    if (!in) throw ConfigError("config", fmt::format("cannot open config file '{}'", config_file_));
    po::options_description file_options;
    for (auto& [name, description] : sections_) file_options.add(*description);
    try {
      po::parsed_options parsed = po::parse_config_file(in, file_options, /*allow_unregistered=*/false);
      po::store(parsed, values_);
      for (const auto& option : parsed.options) sources_.emplace(option.string_key, config_file_);
    } catch (const po::unknown_option& e) {
      const std::string key = key_of(e);
      throw ConfigError(key, fmt::format("{}:{}: unknown key (see `longrec {} --help` for the keys of each section)",
                                         config_file_, ini_line_of(config_file_, key), command_));
    } catch (const po::invalid_option_value& e) {
      const std::string key = key_of(e);
      throw ConfigError(key, fmt::format("{}:{}: {}; expected {}", config_file_, ini_line_of(config_file_, key),
                                         describe(e), expected(key)));
    } catch (const po::error& e) {
      throw ConfigError("config", fmt::format("{}: {}", config_file_, describe(e)));
    }
  }

  try {
    po::notify(values_);
  } catch (const po::error& e) {
    throw ConfigError("(config)", describe(e));
  }
  for (const auto& entry : entries_) {
    if (!entry.assign) continue;
    const std::string key = full_key(entry.section, entry.key);
    const auto value = values_.find(key);
    if (value == values_.end() || value->second.defaulted()) continue;
    const auto& text = value->second.as<std::string>();
    const std::string expected = entry.assign(text);
    if (expected.empty()) continue;
    const auto source = sources_.find(key);
    if (source != sources_.end() && source->second == config_file_) {
      throw ConfigError(key, fmt::format("{}:{}: got '{}', expected {}", config_file_, ini_line_of(config_file_, key),
                                         text, expected));
    }
    throw ConfigError(key, fmt::format("got '{}' on the command line, expected {}", text, expected));
  }
  for (const auto& entry : entries_) {
    if (entry.validate) entry.validate();
  }
  for (const auto& check : constraints_) check();
  return true;
}

std::string OptionRegistry::source_of(const std::string& key) const {
  if (const auto source = sources_.find(key); source != sources_.end()) return source->second;
  if (const auto derived = derived_sources_.find(key); derived != derived_sources_.end()) return derived->second;
  return "default";
}

std::vector<OptionRegistry::Row> OptionRegistry::resolved() const {
  std::vector<Row> rows;
  for (const auto& entry : entries_) {
    const std::string key = full_key(entry.section, entry.key);
    rows.push_back({key, entry.format(), source_of(key)});
  }
  return rows;
}

std::string OptionRegistry::table() const {
  const auto rows = resolved();
  std::size_t key_width = 3, value_width = 5;
  for (const auto& r : rows) {
    key_width = std::max(key_width, r.key.size());
    value_width = std::max(value_width, r.value.size());
  }
  std::string out = fmt::format("{:<{}}  {:<{}}  {}\n", "key", key_width, "value", value_width, "source");
  for (const auto& r : rows)
    out += fmt::format("{:<{}}  {:<{}}  {}\n", r.key, key_width, r.value, value_width, r.source);
  return out;
}

std::string OptionRegistry::ini() const {
  std::string out;
  std::string section;
  for (const auto& entry : entries_) {
    if (entry.section != section) {
      section = entry.section;
      out += fmt::format("{}[{}]\n", out.empty() ? "" : "\n", section);
    }
    out += fmt::format("{} = {}\n", entry.key, entry.format());
  }
  return out;
}

std::string OptionRegistry::help() const {
  std::string out =
      fmt::format("Usage: longrec {} [--config FILE] [--section.key=value ...]\n\n{}\n\n", command_, summary_);
  out +=
      "General:\n  --help                 print this help with every key and its default\n"
      "  --config FILE          INI file with [section] key = value lines; the command line overrides it\n\n";
  for (const auto& [name, description] : sections_) {
    std::ostringstream text;
    text << *description;
    out += text.str() + "\n";
  }
  return out;
}

namespace check {

Validator<std::string> one_of(std::vector<std::string> choices) {
  return [choices](const std::string& key, const std::string& v) {
    if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
      throw ConfigError(key, fmt::format("got '{}', expected one of: {}", v, fmt::join(choices, ", ")));
    }
  };
}

Validator<std::string> writable_path() {
  return [](const std::string& key, const std::string& v) {
    if (v.empty()) return;
    const auto directory = std::filesystem::path(v).parent_path();
    std::error_code ec;
    if (!directory.empty() && !std::filesystem::is_directory(directory, ec)) {
      throw ConfigError(key, fmt::format("'{}': directory '{}' does not exist", v, directory.string()));
    }
    if (std::filesystem::is_directory(v, ec))
      throw ConfigError(key, fmt::format("'{}' is a directory, expected a file", v));
  };
}

Validator<std::string> existing_file(bool optional) {
  return [optional](const std::string& key, const std::string& v) {
    if (v.empty()) {
      if (!optional) throw ConfigError(key, "a file path is required");
      return;
    }
    std::error_code ec;
    if (!std::filesystem::is_regular_file(v, ec)) {
      throw ConfigError(key, fmt::format("'{}' does not exist or is not a regular file", v));
    }
  };
}

}  // namespace check
}  // namespace longrec
