// The HDF5 history store (format "longrec-history", version 1).
//
// A dataset is a directory:
//   meta.h5        attributes format, version, num_users, num_items, num_events,
//                  num_parts, time_is_ordinal, has_ratings, item_order, source,
//                  source_checksum, min_time, max_time;
//                  /items/raw_id [I] int64 (dense id i+1 <-> raw_id[i]),
//                  /items/count [I] int64, optional /items/text [I] UTF-8.
//   part-NNNNN.h5  users hashed into parts: /users/raw_id [U] int64,
//                  /users/offsets [U+1] int64, /events/item [N] int32 (1..I,
//                  0 is padding and never stored), /events/time [N] int64,
//                  optional /events/rating [N] float32. Events of a user are
//                  sorted by (time, original order); ratings are finite.
// Chunked datasets carry a Fletcher-32 checksum per chunk (stores written
// before it have none and read the same), verified by HDF5 on every read.
// Writers build the directory under a temporary name and rename it when
// complete, so a crash never leaves a half-written dataset under the target name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace longrec::data {

inline constexpr const char* kHistoryStoreFormat = "longrec-history";
inline constexpr std::int64_t kHistoryStoreVersion = 1;

struct StoreMeta {
  std::int64_t num_users = 0;
  std::int64_t num_items = 0;
  std::int64_t num_events = 0;
  int num_parts = 0;
  bool time_is_ordinal = false;
  bool has_ratings = false;
  bool has_item_text = false;
  std::string item_order;       // "first" (first appearance) or "frequency"
  std::string source;           // what the store was made from
  std::string source_checksum;  // "crc32:..." of each input, ';'-separated
  std::int64_t min_time = 0;
  std::int64_t max_time = 0;
};

// Part of a user, by hash of the raw id, so that users spread evenly.
int part_of_user(std::int64_t raw_user_id, int num_parts);

class HistoryStoreWriter {
 public:
  struct Options {
    int num_parts = 8;
    bool overwrite = false;  // replace an existing non-empty target
    bool with_ratings = false;
  };
  // Refuses a non-empty target unless options.overwrite; builds in a temporary
  // sibling directory.
  HistoryStoreWriter(std::filesystem::path target, Options options);
  ~HistoryStoreWriter();  // removes the temporary directory unless committed
  HistoryStoreWriter(const HistoryStoreWriter&) = delete;
  HistoryStoreWriter& operator=(const HistoryStoreWriter&) = delete;

  // One user's whole history, oldest first; items are dense ids in 1..I.
  void add_user(std::int64_t raw_user_id, std::span<const std::int32_t> items, std::span<const std::int64_t> times,
                std::span<const float> ratings = {});
  // The item table: raw_ids[i] and counts[i] belong to dense id i+1; text optional.
  void set_items(std::vector<std::int64_t> raw_ids, std::vector<std::int64_t> counts,
                 std::vector<std::string> text = {});
  // Writes meta.h5, closes every file and renames the directory into place.
  StoreMeta commit(const StoreMeta& description);

  const std::filesystem::path& temporary_path() const;

 private:
  void write_files(const StoreMeta& meta);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads and validates a store: format, version, and the sizes of every part
// are checked at open; any problem throws DataError naming the file and
// dataset, with the hint to re-run `longrec prepare`.
class HistoryStoreReader {
 public:
  explicit HistoryStoreReader(const std::filesystem::path& directory);
  ~HistoryStoreReader();
  HistoryStoreReader(HistoryStoreReader&&) noexcept;

  const StoreMeta& meta() const;
  const std::filesystem::path& directory() const;
  int num_parts() const;
  std::int64_t part_num_users(int part) const;
  // [U+1] event offsets of the part's users (validated: 0, non-decreasing, N).
  std::span<const std::int64_t> part_offsets(int part) const;
  std::vector<std::int64_t> part_user_ids(int part) const;

  // Events [begin, end) of a part; item ids are checked to be in 1..I.
  void read_events(int part, std::int64_t begin, std::int64_t end, std::int32_t* items, std::int64_t* times) const;
  // The events of users [first_user, end_user) of a part (from offsets[first_user]),
  // as read_events, and each user's times checked to be in order: a store
  // with a user's events out of order throws DataError naming the part file
  // and the user. What the loader reads training and evaluation data with.
  void read_users(int part, std::int64_t first_user, std::int64_t end_user, std::int32_t* items,
                  std::int64_t* times) const;
  // Whether every chunk of the part's event datasets carries a checksum
  // (Fletcher-32, verified by HDF5 on every read; stores written before
  // checksums were added have none).
  bool part_has_checksums(int part) const;
  // The part file, e.g. "<dir>/part-00003.h5".
  std::filesystem::path part_path(int part) const;
  void read_ratings(int part, std::int64_t begin, std::int64_t end, float* ratings) const;

  std::vector<std::int64_t> item_raw_ids() const;
  std::vector<std::int64_t> item_counts() const;
  std::vector<std::string> item_text() const;  // empty when the store has none

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string part_file_name(int part);

// Version of the HDF5 library stores are read and written with, e.g. "1.10.8".
std::string hdf5_version();

}  // namespace longrec::data
