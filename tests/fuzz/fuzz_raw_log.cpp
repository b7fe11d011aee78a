// libFuzzer target: the raw-log readers (seq, movielens-dat, csv/tsv with and
// without headers, item text). Input: byte 0 picks the format and the file
// name, byte 1 the header / skip_bad_lines / encoding options, the rest is the
// file. A refusal (longrec::Error) is the expected outcome of bad input; any
// other exception, a crash or a sanitizer report is a finding.
#include <cstdint>

#include "fuzz_input_file.h"
#include "longrec/core/error.h"
#include "longrec/data/raw_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  static const char* const kFormats[] = {"auto", "seq", "movielens-dat", "csv", "tsv"};
  static const char* const kNames[] = {"log.txt", "ratings.dat", "ratings.csv", "u.data", "items.tsv", "movies.dat"};
  static const char* const kHeaders[] = {"auto", "yes", "no"};
  static const char* const kEncodings[] = {"auto", "utf-8", "latin-1"};
  const auto choice = data[0], options = data[1];
  longrec::fuzz::InputFile file(data + 2, size - 2, kNames[choice % 6]);
  try {
    if (choice / 6 % 4 == 3) {
      (void)longrec::data::read_item_text(file.path(), kEncodings[options % 3]);
    } else {
      longrec::data::RawReadOptions o;
      o.format = kFormats[choice / 6 % 5];
      o.header = kHeaders[options % 3];
      o.skip_bad_lines = (options & 0x8) != 0;
      if (options & 0x10) {  // columns by index, as a user of a header-less file gives them
        o.user_column = "0";
        o.item_column = "1";
        o.time_column = (options & 0x20) ? "3" : "";
        o.rating_column = (options & 0x40) ? "2" : "";
      }
      (void)longrec::data::read_interactions(file.path(), o);
    }
  } catch (const longrec::Error&) {
  }
  return 0;
}
