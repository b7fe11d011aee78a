// Readers of raw interaction logs and item text (design section 3).
//
// Formats: `seq` (one user per line: `user item item ...`, oldest first, no
// time: ordinal time is the position), `pairs` (one event per line, in time
// order: `user item [time]`, whitespace-separated, as the SASRec repository's
// Video.txt and JODIE's wikipedia.txt; without time the file order is the
// time), `movielens-dat` (`user::item::rating::time`),
// `csv` / `tsv` (columns chosen by name or 0-based index). Ids must be
// integers, ratings finite numbers. A malformed line fails with `file:line:
// what is wrong`, or with skip_bad_lines is counted and reported.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace longrec::data {

enum class RawFormat { Seq, MovielensDat, Csv, Tsv, Pairs };

std::string format_name(RawFormat format);
// "seq", "pairs", "movielens-dat", "csv", "tsv"; throws ConfigError("prepare.format") otherwise.
RawFormat parse_format_name(const std::string& name);
// From the file name and its first line (a tab-separated file whose first
// lines hold a varying number of integers is seq, not TSV); throws DataError
// naming the file when unsure.
struct FormatGuess {
  RawFormat format;
  std::string why;  // what the guess rests on, e.g. "a tab on line 1"
};
FormatGuess guess_format(const std::filesystem::path& path);
RawFormat detect_format(const std::filesystem::path& path);

struct RawReadOptions {
  std::string format = "auto";
  // csv / tsv only: "auto" (a header when the first field of line 1 is not a
  // number), "yes", "no".
  std::string header = "auto";
  // Column names (header) or 0-based indices; empty = detect common names
  // (userId, user_id, movieId, item_id, timestamp, ...) or, without a header,
  // user,item,rating,time as in ml-100k's u.data.
  std::string user_column, item_column, time_column, rating_column;
  bool skip_bad_lines = false;
  // Called while reading (every few thousand lines, and once at the end) with
  // the bytes of the file read so far, for a progress bar; empty: not called.
  std::function<void(std::int64_t bytes_read)> on_progress;
};

struct RawInteractions {
  RawFormat format = RawFormat::Seq;
  std::vector<std::int64_t> users, items, times;  // one entry per event, file order
  std::vector<float> ratings;                     // empty unless has_ratings
  bool time_is_ordinal = false;                   // seq: time = position in the user's line
  bool has_ratings = false;
  std::string format_guess;                    // with format "auto": what the guess rests on (empty when given)
  std::int64_t lines = 0;                      // data lines read (header excluded)
  std::int64_t bad_lines = 0;                  // skipped with skip_bad_lines
  std::vector<std::string> bad_line_examples;  // the first few "file:line: why"
};

// options.format "auto" guesses (guess_format); an error then says which
// format was guessed and from what, and how to pass another. Ratings must be
// finite numbers (NaN and inf are refused with file:line).
RawInteractions read_interactions(const std::filesystem::path& path, const RawReadOptions& options);
// Reads as `format`, whatever options.format says.
RawInteractions read_interactions_as(const std::filesystem::path& path, RawFormat format,
                                     const RawReadOptions& options);

struct ItemText {
  std::vector<std::int64_t> raw_ids;
  std::vector<std::string> texts;  // UTF-8: every field after the id, joined with " | "
  std::string encoding;            // what the file was decoded from
  // The fields after the id, by name: movies.dat title, genres; u.item title;
  // a CSV with a header its column names; otherwise column2, column3, ...
  std::vector<std::string> field_names;
  std::vector<std::vector<std::string>> fields;  // per item, trimmed, in field_names order (may be shorter)
};

// Item texts built from chosen fields (`fields` empty: all, in file order):
// style "plain" joins the values with " | ", "key_value" writes HLLM's
// "name: value" pairs joined with ", ". An empty value is left out. Throws
// ConfigError("prepare.text_fields") naming an unknown field and the file's
// fields, ConfigError("prepare.text_style") for another style.
std::vector<std::string> compose_item_texts(const ItemText& text, const std::vector<std::string>& fields,
                                            const std::string& style);

// movies.dat (`id::title::genres`), u.item (`id|title|...`), movies.csv
// (`movieId,title,genres`), or a generic `item_id,text` CSV. `encoding` is
// "auto" (UTF-8 when valid, else Latin-1), "utf-8" or "latin-1".
ItemText read_item_text(const std::filesystem::path& path, const std::string& encoding = "auto");

// Splits one CSV line on `delimiter`, honouring double quotes ("a,b", "say ""hi""").
std::vector<std::string> split_delimited(const std::string& line, char delimiter);

}  // namespace longrec::data
