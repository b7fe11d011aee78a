#include "longrec/data/raw_reader.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <optional>
#include <set>

#include <fmt/ranges.h>

#include "longrec/core/error.h"

namespace longrec::data {

namespace fs = std::filesystem;

std::string format_name(RawFormat format) {
  switch (format) {
    case RawFormat::Seq:
      return "seq";
    case RawFormat::MovielensDat:
      return "movielens-dat";
    case RawFormat::Csv:
      return "csv";
    case RawFormat::Tsv:
      return "tsv";
    case RawFormat::Pairs:
      return "pairs";
  }
  return "?";
}

RawFormat parse_format_name(const std::string& name) {
  for (auto f : {RawFormat::Seq, RawFormat::Pairs, RawFormat::MovielensDat, RawFormat::Csv, RawFormat::Tsv}) {
    if (format_name(f) == name) return f;
  }
  throw ConfigError("prepare.format",
                    fmt::format("got '{}', expected auto, seq, pairs, movielens-dat, csv or tsv", name));
}

namespace {

constexpr std::size_t kMaxBadLineExamples = 5;

// Reads a text file line by line, checking its encoding as it goes: a UTF-16
// BOM or a NUL byte means this is not a text file longrec can read.
class LineReader {
 public:
  explicit LineReader(const fs::path& path) : path_(path), in_(path, std::ios::binary) {
    if (!in_) throw DataError(fmt::format("{}: cannot open for reading", path.string()));
    static thread_local std::vector<char> buffer(1 << 20);
    in_.rdbuf()->pubsetbuf(buffer.data(), static_cast<std::streamsize>(buffer.size()));
  }

  // Next line without the trailing "\r\n" / "\n"; false at end of file.
  bool next(std::string& line) {
    if (!std::getline(in_, line)) {
      if (in_.bad()) throw DataError(fmt::format("{}:{}: read error", path_.string(), number_));
      return false;
    }
    ++number_;
    bytes_ += static_cast<std::int64_t>(line.size()) + (in_.eof() ? 0 : 1);  // with its '\n', if any
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (number_ == 1) {
      if (line.size() >= 2 &&
          ((static_cast<unsigned char>(line[0]) == 0xFF && static_cast<unsigned char>(line[1]) == 0xFE) ||
           (static_cast<unsigned char>(line[0]) == 0xFE && static_cast<unsigned char>(line[1]) == 0xFF))) {
        throw DataError(fmt::format(
            "{}:1: the file is UTF-16 encoded; convert it to UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)", path_.string()));
      }
      if (line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 BOM
    }
    if (line.find('\0') != std::string::npos) {
      throw DataError(fmt::format("{}:{}: NUL byte: this is a binary file, not a text file", path_.string(), number_));
    }
    return true;
  }
  std::int64_t number() const { return number_; }
  // Bytes consumed so far (the lines returned and their line ends).
  std::int64_t bytes() const { return bytes_; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  std::ifstream in_;
  std::int64_t number_ = 0, bytes_ = 0;
};

void require_non_empty(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw DataError(fmt::format("{}: file not found", path.string()));
  if (fs::file_size(path, ec) == 0) throw DataError(fmt::format("{}: the file is empty", path.string()));
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Parses an integer id; nullopt when the text is not exactly one integer.
std::optional<std::int64_t> parse_int(std::string_view text) {
  text = trim(text);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::optional<double> parse_number(std::string_view text) {
  text = trim(text);
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// Thrown for one bad line; read_interactions reports or counts it with the
// file and line. A DataError, so that one escaping a reader (split_delimited
// is public) is still a refusal, never std::terminate.
struct BadLine : DataError {
  explicit BadLine(const std::string& reason) : DataError(reason), why(reason) {}
  std::string why;
};

// A rating: a finite number that fits a float (NaN, inf and 1e39 are refused).
float require_rating(std::string_view text, std::size_t field) {
  const auto value = parse_number(text);
  if (!value) throw BadLine{fmt::format("rating '{}' (field {}) is not a number", std::string(trim(text)), field + 1)};
  if (!std::isfinite(*value) || !std::isfinite(static_cast<float>(*value))) {
    throw BadLine{fmt::format("rating '{}' (field {}) is not a finite number", std::string(trim(text)), field + 1)};
  }
  return static_cast<float>(*value);
}

std::int64_t require_int(std::string_view text, const char* what, std::size_t field) {
  const auto value = parse_int(text);
  if (!value)
    throw BadLine{fmt::format("{} '{}' (field {}) is not an integer", what, std::string(trim(text)), field + 1)};
  return *value;
}

std::vector<std::string_view> split_whitespace(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    const std::size_t start = i;
    while (i < line.size() && !std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

std::vector<std::string_view> split_on(std::string_view line, std::string_view separator) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (true) {
    const auto pos = line.find(separator, start);
    fields.push_back(line.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + separator.size();
  }
  return fields;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Column index for a role: an explicit name or index, or the first of the
// common names present in the header.
std::optional<std::size_t> resolve_column(const std::vector<std::string>& header, const std::string& requested,
                                          std::initializer_list<const char*> common, const fs::path& path,
                                          const char* role, const char* option, bool required) {
  if (!requested.empty()) {
    if (const auto index = parse_int(requested)) {
      if (*index < 0 || (!header.empty() && static_cast<std::size_t>(*index) >= header.size())) {
        throw DataError(fmt::format("{}: {} column index {} is outside the {} columns", path.string(), role, *index,
                                    header.size()));
      }
      return static_cast<std::size_t>(*index);
    }
    for (std::size_t i = 0; i < header.size(); ++i) {
      if (header[i] == requested) return i;
    }
    throw DataError(fmt::format("{}:1: header has no column '{}' for the {} (columns: {}); set {}", path.string(),
                                requested, role, fmt::join(header, ", "), option));
  }
  for (const char* name : common) {
    for (std::size_t i = 0; i < header.size(); ++i) {
      if (lower(header[i]) == lower(name)) return i;
    }
  }
  if (required) {
    throw DataError(fmt::format("{}:1: header has no {} column (columns: {}; looked for {}); set {}", path.string(),
                                role, fmt::join(header, ", "), fmt::join(common, ", "), option));
  }
  return std::nullopt;
}

}  // namespace

std::vector<std::string> split_delimited(const std::string& line, char delimiter) {
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field += c;
      }
    } else if (c == '"' && field.empty()) {
      quoted = true;
    } else if (c == delimiter) {
      fields.push_back(std::move(field));
      field.clear();
    } else {
      field += c;
    }
  }
  if (quoted) throw BadLine{"unterminated quoted field"};
  fields.push_back(std::move(field));
  return fields;
}

namespace {

bool all_integers(const std::vector<std::string_view>& fields) {
  return std::all_of(fields.begin(), fields.end(), [](auto f) { return parse_int(f).has_value(); });
}

// Whether a tab-separated file is a seq file: every field of its first lines
// an integer and their number varying (a TSV table has a fixed column count).
bool looks_like_tabbed_seq(LineReader& reader, std::string line) {
  constexpr int kLines = 50;
  std::size_t first_count = 0;
  bool varies = false;
  for (int n = 0; n < kLines; ++n) {
    if (!trim(line).empty()) {
      const auto fields = split_whitespace(line);
      if (!all_integers(fields)) return false;
      if (first_count == 0) first_count = fields.size();
      varies = varies || fields.size() != first_count;
    }
    if (!reader.next(line)) break;
  }
  return varies;
}

// Space-separated lines of 2 or 3 integers, the same number on every line, a
// user id on more than one line: one event per line (`pairs`), not one user per
// line (`seq`, where "user item" is a user with one event). Reads up to
// kLines non-empty lines from `line` on.
bool looks_like_pairs(LineReader& reader, std::string line) {
  constexpr int kLines = 200;
  std::size_t count = 0;
  std::set<std::string> users;
  bool repeats = false;
  for (int n = 0; n < kLines;) {
    if (!trim(line).empty()) {
      ++n;
      const auto fields = split_whitespace(line);
      if (!all_integers(fields) || fields.size() < 2 || fields.size() > 3) return false;
      if (count == 0) count = fields.size();
      if (fields.size() != count) return false;
      repeats = repeats || !users.insert(std::string(fields[0])).second;
    }
    if (!reader.next(line)) break;
  }
  return repeats;
}

}  // namespace

FormatGuess guess_format(const fs::path& path) {
  require_non_empty(path);
  const std::string name = lower(path.filename().string());
  LineReader reader(path);
  std::string line;
  while (reader.next(line) && trim(line).empty()) {
  }
  const std::int64_t number = reader.number();
  const auto guess = [&](RawFormat format, std::string why) { return FormatGuess{format, std::move(why)}; };
  if (line.find("::") != std::string::npos)
    return guess(RawFormat::MovielensDat, fmt::format("'::' on line {}", number));
  if (name.ends_with(".csv")) return guess(RawFormat::Csv, "the file name ends in .csv");
  if (name.ends_with(".tsv")) return guess(RawFormat::Tsv, "the file name ends in .tsv");
  if (name == "u.data") return guess(RawFormat::Tsv, "the file is named u.data");
  if (line.find('\t') != std::string::npos) {
    if (looks_like_tabbed_seq(reader, line)) {
      return guess(RawFormat::Seq,
                   fmt::format("tab-separated integers, a varying number per line from line {}", number));
    }
    return guess(RawFormat::Tsv, fmt::format("a tab on line {}", number));
  }
  if (line.find(',') != std::string::npos) return guess(RawFormat::Csv, fmt::format("a comma on line {}", number));
  const auto fields = split_whitespace(line);
  if (fields.size() >= 2 && all_integers(fields)) {
    if (looks_like_pairs(reader, line)) {
      return guess(RawFormat::Pairs, fmt::format("{} space-separated integers per line from line {}, user ids on "
                                                 "several lines (one event per line)",
                                                 fields.size(), number));
    }
    return guess(RawFormat::Seq, fmt::format("space-separated integers on line {}", number));
  }
  throw DataError(
      fmt::format("{}:{}: cannot tell the format from the first line; pass --format "
                  "(seq, pairs, movielens-dat, csv, tsv)",
                  path.string(), number));
}

RawFormat detect_format(const fs::path& path) { return guess_format(path).format; }

RawInteractions read_interactions(const fs::path& path, const RawReadOptions& options) {
  require_non_empty(path);
  if (options.format != "auto") return read_interactions_as(path, parse_format_name(options.format), options);
  const FormatGuess guess = guess_format(path);
  try {
    auto out = read_interactions_as(path, guess.format, options);
    out.format_guess = guess.why;
    return out;
  } catch (const DataError& e) {
    // What was read depends on the guess: say it, and how to choose another.
    std::vector<std::string> others;
    for (auto f : {RawFormat::Seq, RawFormat::Pairs, RawFormat::MovielensDat, RawFormat::Csv, RawFormat::Tsv}) {
      if (f != guess.format) others.push_back(format_name(f));
    }
    throw DataError(fmt::format("{} [read as {}, the format guessed from {}; if it is another, pass --format {}]",
                                e.what(), format_name(guess.format), guess.why, fmt::join(others, "|")));
  }
}

RawInteractions read_interactions_as(const fs::path& path, RawFormat format, const RawReadOptions& options) {
  RawInteractions out;
  out.format = format;
  out.time_is_ordinal = out.format == RawFormat::Seq;

  LineReader reader(path);
  std::string line;

  // Delimited formats: header handling and column mapping.
  const bool delimited = out.format == RawFormat::Csv || out.format == RawFormat::Tsv;
  const char delimiter = out.format == RawFormat::Tsv ? '\t' : ',';
  std::size_t user_col = 0, item_col = 1, num_columns = 0;
  std::optional<std::size_t> time_col, rating_col;
  bool pending_first_line = false;
  if (delimited) {
    if (!reader.next(line)) throw DataError(fmt::format("{}: the file is empty", path.string()));
    std::vector<std::string> first;
    try {
      first = split_delimited(line, delimiter);
    } catch (const BadLine& bad) {
      throw DataError(fmt::format("{}:1: {}", path.string(), bad.why));
    }
    bool has_header = options.header == "yes";
    if (options.header == "auto") has_header = !parse_int(first[0]).has_value();
    if (options.header != "auto" && options.header != "yes" && options.header != "no") {
      throw ConfigError("prepare.header", fmt::format("got '{}', expected auto, yes or no", options.header));
    }
    std::vector<std::string> header;
    if (has_header) {
      header = first;
      for (auto& h : header) h = std::string(trim(h));
    } else {
      pending_first_line = true;
    }
    num_columns = first.size();
    if (has_header) {
      user_col = *resolve_column(header, options.user_column, {"user", "userId", "user_id", "uid", "UserID"}, path,
                                 "user", "--user-col", true);
      item_col = *resolve_column(header, options.item_column,
                                 {"item", "itemId", "item_id", "movieId", "movie_id", "iid", "ItemID", "product_id"},
                                 path, "item", "--item-col", true);
      time_col = resolve_column(header, options.time_column, {"time", "timestamp", "ts", "unix_time", "datetime"}, path,
                                "time", "--time-col", false);
      rating_col = resolve_column(header, options.rating_column, {"rating", "score", "stars"}, path, "rating",
                                  "--rating-col", false);
    } else {
      // Without a header: the given indices, else ml-100k's u.data order.
      const auto index_or = [&](const std::string& requested, std::optional<std::size_t> fallback, const char* role,
                                const char* option) -> std::optional<std::size_t> {
        if (requested.empty()) return fallback && *fallback < num_columns ? fallback : std::nullopt;
        const auto index = parse_int(requested);
        if (!index || *index < 0 || static_cast<std::size_t>(*index) >= num_columns) {
          throw DataError(fmt::format("{}: the file has no header, so {} must be a column index in 0..{} (got '{}')",
                                      path.string(), option, num_columns - 1, requested));
        }
        (void)role;
        return static_cast<std::size_t>(*index);
      };
      user_col = *index_or(options.user_column, 0, "user", "--user-col");
      const auto item = index_or(options.item_column, 1, "item", "--item-col");
      if (!item)
        throw DataError(
            fmt::format("{}:1: expected at least 2 columns (user, item), got {}", path.string(), num_columns));
      item_col = *item;
      rating_col = index_or(options.rating_column, 2, "rating", "--rating-col");
      time_col = index_or(options.time_column, 3, "time", "--time-col");
    }
    out.has_ratings = rating_col.has_value();
  } else if (out.format == RawFormat::MovielensDat) {
    out.has_ratings = true;
  }
  out.time_is_ordinal = out.time_is_ordinal || (delimited && !time_col);

  std::vector<std::string> fields_storage;
  std::int64_t ordinal = 0;     // delimited or pairs without time: file order
  std::size_t pair_fields = 0;  // pairs: 2 (user item) or 3 (user item time), from the first line
  const auto parse_line = [&](const std::string& text) {
    switch (out.format) {
      case RawFormat::Seq: {
        const auto fields = split_whitespace(text);
        if (fields.size() < 2) {
          throw BadLine{fmt::format("expected 'user item [item ...]', got {} field(s)", fields.size())};
        }
        const std::int64_t user = require_int(fields[0], "user id", 0);
        const std::size_t before = out.items.size();
        try {
          for (std::size_t i = 1; i < fields.size(); ++i) {
            out.items.push_back(require_int(fields[i], "item id", i));
            out.users.push_back(user);
            out.times.push_back(static_cast<std::int64_t>(i - 1));
          }
        } catch (const BadLine&) {
          out.items.resize(before);
          out.users.resize(before);
          out.times.resize(before);
          throw;
        }
        break;
      }
      case RawFormat::Pairs: {
        const auto fields = split_whitespace(text);
        if (pair_fields == 0) {
          if (fields.size() != 2 && fields.size() != 3) {
            throw BadLine{fmt::format("expected 'user item' or 'user item time', got {} field(s)", fields.size())};
          }
          pair_fields = fields.size();
          out.time_is_ordinal = pair_fields == 2;
        }
        if (fields.size() != pair_fields) {
          throw BadLine{fmt::format("expected {} fields ('{}') as on the first line, got {}", pair_fields,
                                    pair_fields == 2 ? "user item" : "user item time", fields.size())};
        }
        const auto user = require_int(fields[0], "user id", 0);
        const auto item = require_int(fields[1], "item id", 1);
        const std::int64_t time = pair_fields == 3 ? require_int(fields[2], "timestamp", 2) : ordinal++;
        out.users.push_back(user);
        out.items.push_back(item);
        out.times.push_back(time);
        break;
      }
      case RawFormat::MovielensDat: {
        const auto fields = split_on(text, "::");
        if (fields.size() != 4) {
          throw BadLine{fmt::format("expected 4 fields 'user::item::rating::time', got {}", fields.size())};
        }
        const auto user = require_int(fields[0], "user id", 0);
        const auto item = require_int(fields[1], "item id", 1);
        const float rating = require_rating(fields[2], 2);
        const auto time = require_int(fields[3], "timestamp", 3);
        out.users.push_back(user);
        out.items.push_back(item);
        out.ratings.push_back(rating);
        out.times.push_back(time);
        break;
      }
      case RawFormat::Csv:
      case RawFormat::Tsv: {
        fields_storage = split_delimited(text, delimiter);
        if (fields_storage.size() != num_columns) {
          throw BadLine{fmt::format("expected {} columns, got {}", num_columns, fields_storage.size())};
        }
        const auto user = require_int(fields_storage[user_col], "user id", user_col);
        const auto item = require_int(fields_storage[item_col], "item id", item_col);
        std::int64_t time = ordinal++;
        if (time_col) time = require_int(fields_storage[*time_col], "timestamp", *time_col);
        float rating = 0;
        if (rating_col) rating = require_rating(fields_storage[*rating_col], *rating_col);
        out.users.push_back(user);
        out.items.push_back(item);
        out.times.push_back(time);
        if (rating_col) out.ratings.push_back(rating);
        break;
      }
    }
  };

  const auto handle = [&](const std::string& text) {
    if (trim(text).empty()) return;
    ++out.lines;
    try {
      parse_line(text);
    } catch (const BadLine& bad) {
      const std::string message = fmt::format("{}:{}: {}", path.string(), reader.number(), bad.why);
      if (!options.skip_bad_lines) throw DataError(message + " (pass --skip-bad-lines to skip such lines)");
      ++out.bad_lines;
      if (out.bad_line_examples.size() < kMaxBadLineExamples) out.bad_line_examples.push_back(message);
    }
  };
  if (pending_first_line) handle(line);
  constexpr std::int64_t kLinesPerProgress = 4096;
  while (reader.next(line)) {
    handle(line);
    if (options.on_progress && reader.number() % kLinesPerProgress == 0) options.on_progress(reader.bytes());
  }
  if (options.on_progress) options.on_progress(reader.bytes());

  if (out.items.empty()) {
    throw DataError(fmt::format("{}: no events read ({} data lines, {} bad)", path.string(), out.lines, out.bad_lines));
  }
  return out;
}

namespace {

bool valid_utf8(std::string_view s) {
  constexpr std::size_t kInvalid = 99;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80                          ? 0
                          : (c & 0xE0) == 0xC0 && c >= 0xC2 ? 1
                          : (c & 0xF0) == 0xE0              ? 2
                          : (c & 0xF8) == 0xF0 && c <= 0xF4 ? 3
                                                            : kInvalid;
    if (n == kInvalid || i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n + 1;
  }
  return true;
}

std::string latin1_to_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

}  // namespace

ItemText read_item_text(const fs::path& path, const std::string& encoding) {
  require_non_empty(path);
  if (encoding != "auto" && encoding != "utf-8" && encoding != "latin-1") {
    throw ConfigError("prepare.text-encoding", fmt::format("got '{}', expected auto, utf-8 or latin-1", encoding));
  }
  // Read all lines first: "auto" decides the encoding for the whole file.
  std::vector<std::pair<std::int64_t, std::string>> lines;
  {
    LineReader reader(path);
    std::string line;
    while (reader.next(line)) lines.emplace_back(reader.number(), line);
  }
  ItemText out;
  out.encoding = encoding;
  if (encoding != "latin-1") {
    for (const auto& [number, line] : lines) {
      if (!valid_utf8(line)) {
        if (encoding == "utf-8") {
          throw DataError(
              fmt::format("{}:{}: invalid UTF-8 byte sequence; pass --text-encoding latin-1 if the file "
                          "is Latin-1",
                          path.string(), number));
        }
        out.encoding = "latin-1";
        break;
      }
    }
    if (out.encoding == "auto") out.encoding = "utf-8";
  }

  const std::string name = lower(path.filename().string());
  const bool dat = !lines.empty() && lines[0].second.find("::") != std::string::npos;
  const bool pipe = !dat && name == "u.item";
  bool skip_header = false;
  if (dat) out.field_names = {"title", "genres"};
  if (pipe) out.field_names = {"title"};
  if (!dat && !pipe && !lines.empty()) {
    try {
      const auto first = split_delimited(lines[0].second, ',');
      skip_header = !parse_int(first[0]).has_value();
      if (skip_header) {
        for (std::size_t f = 1; f < first.size(); ++f) out.field_names.emplace_back(trim(first[f]));
      }
    } catch (const BadLine&) {
      skip_header = false;  // read as data below: refused there with its file and line
    }
  }
  for (std::size_t i = skip_header ? 1 : 0; i < lines.size(); ++i) {
    const auto& [number, raw] = lines[i];
    if (trim(raw).empty()) continue;
    const std::string line = out.encoding == "latin-1" ? latin1_to_utf8(raw) : raw;
    std::vector<std::string> fields;
    try {
      if (dat) {
        for (auto f : split_on(line, "::")) fields.emplace_back(f);
      } else if (pipe) {
        for (auto f : split_on(line, "|")) fields.emplace_back(f);
        if (fields.size() >= 2) fields.resize(2);  // id|title|dates|url|genre flags: keep the title
      } else {
        fields = split_delimited(line, ',');
      }
    } catch (const BadLine& bad) {
      throw DataError(fmt::format("{}:{}: {}", path.string(), number, bad.why));
    }
    if (fields.size() < 2) {
      throw DataError(fmt::format("{}:{}: expected an item id and its text, got {} field(s)", path.string(), number,
                                  fields.size()));
    }
    const auto id = parse_int(fields[0]);
    if (!id) {
      throw DataError(fmt::format("{}:{}: item id '{}' is not an integer", path.string(), number, fields[0]));
    }
    std::string text;
    std::vector<std::string> values;
    for (std::size_t f = 1; f < fields.size(); ++f) {
      if (f > 1) text += " | ";
      text += trim(fields[f]);
      values.emplace_back(trim(fields[f]));
      if (out.field_names.size() < f) out.field_names.push_back(fmt::format("column{}", f + 1));
    }
    out.raw_ids.push_back(*id);
    out.texts.push_back(std::move(text));
    out.fields.push_back(std::move(values));
  }
  if (out.raw_ids.empty()) throw DataError(fmt::format("{}: no item text lines", path.string()));
  return out;
}

std::vector<std::string> compose_item_texts(const ItemText& text, const std::vector<std::string>& fields,
                                            const std::string& style) {
  if (style != "plain" && style != "key_value") {
    throw ConfigError("prepare.text_style", fmt::format("got '{}', expected plain or key_value", style));
  }
  std::vector<std::size_t> chosen;
  if (fields.empty()) {
    for (std::size_t f = 0; f < text.field_names.size(); ++f) chosen.push_back(f);
  }
  for (const auto& name : fields) {
    const auto it = std::find(text.field_names.begin(), text.field_names.end(), name);
    if (it == text.field_names.end()) {
      std::string known;
      for (const auto& n : text.field_names) known += (known.empty() ? "" : ", ") + n;
      throw ConfigError("prepare.text_fields",
                        fmt::format("unknown item text field '{}'; the item file has: {}", name, known));
    }
    chosen.push_back(static_cast<std::size_t>(it - text.field_names.begin()));
  }
  std::vector<std::string> out;
  out.reserve(text.fields.size());
  for (const auto& values : text.fields) {
    std::string composed;
    for (auto f : chosen) {
      if (f >= values.size() || values[f].empty()) continue;
      if (!composed.empty()) composed += style == "plain" ? " | " : ", ";
      if (style == "key_value") composed += text.field_names[f] + ": ";
      composed += values[f];
    }
    out.push_back(std::move(composed));
  }
  return out;
}

}  // namespace longrec::data
