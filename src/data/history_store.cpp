#include "longrec/data/history_store.h"

#include <fcntl.h>
#include <signal.h>

#include <cerrno>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "longrec/data/h5.h"
#include "longrec/core/error.h"
#include "longrec/core/atomic_file.h"
#include "longrec/core/rng.h"

namespace longrec::data {

namespace fs = std::filesystem;

namespace {

constexpr const char* kRerunHint = "re-run `longrec prepare` (or `longrec synth`) to rebuild the dataset";
constexpr hsize_t kEventChunk = 1 << 16;
constexpr std::size_t kFlushEvents = 1 << 20;

bool is_non_empty_directory(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && !fs::is_empty(path, ec);
}

// Removes `.<name>.tmp-<pid>` directories left by writers that died (their
// process no longer exists), so crashed runs do not pile up half-written data.
void remove_stale_temporaries(const fs::path& parent, const std::string& name) {
  const std::string prefix = "." + name + ".tmp-";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string file = entry.path().filename().string();
    if (file.rfind(prefix, 0) != 0) continue;
    const std::string pid_text = file.substr(prefix.size());
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::stol(pid_text));
    if (pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) fs::remove_all(entry.path(), ec);
  }
}

[[noreturn]] void rethrow_with_hint(const DataError& e) {
  const std::string what = e.what();
  if (what.find(kRerunHint) != std::string::npos) throw e;
  throw DataError(what + "; " + kRerunHint);
}

// Runs one step of writing a store; a failure (a full disk, most often: the
// message names the file and says so) is rethrown saying that nothing was
// written under the target name: the writer's destructor removes the
// temporary directory.
template <typename F>
void writing(const fs::path& target, F&& step) {
  try {
    step();
  } catch (...) {
    rethrow_with_note(fmt::format("nothing was written to {} (the partial files are removed)", target.string()));
  }
}

}  // namespace

int part_of_user(std::int64_t raw_user_id, int num_parts) {
  return static_cast<int>(splitmix64(static_cast<std::uint64_t>(raw_user_id)) % static_cast<std::uint64_t>(num_parts));
}

std::string hdf5_version() {
  unsigned major = 0, minor = 0, release = 0;
  h5::check(H5get_libversion(&major, &minor, &release), "H5get_libversion");
  return fmt::format("{}.{}.{}", major, minor, release);
}

std::string part_file_name(int part) { return fmt::format("part-{:05d}.h5", part); }

// ---------------------------------------------------------------------------
// Writer

struct HistoryStoreWriter::Impl {
  struct Part {
    h5::File file;
    h5::AppendableDataset<std::int32_t> items;
    h5::AppendableDataset<std::int64_t> times;
    h5::AppendableDataset<float> ratings;
    std::vector<std::int32_t> item_buffer;
    std::vector<std::int64_t> time_buffer;
    std::vector<float> rating_buffer;
    std::vector<std::int64_t> user_ids;
    std::vector<std::int64_t> offsets{0};

    void flush() {
      items.append(item_buffer);
      times.append(time_buffer);
      ratings.append(rating_buffer);
      item_buffer.clear();
      time_buffer.clear();
      rating_buffer.clear();
    }
    // Datasets first, then the file, each close checked (h5.h).
    void close() {
      items.close();
      times.close();
      ratings.close();
      file.close();
    }
  };

  fs::path target, temporary;
  Options options;
  std::vector<Part> parts;
  std::vector<std::int64_t> item_raw_ids, item_counts;
  std::vector<std::string> item_text;
  bool items_set = false, committed = false;
  std::int64_t num_users = 0, num_events = 0;
  std::int64_t min_time = std::numeric_limits<std::int64_t>::max();
  std::int64_t max_time = std::numeric_limits<std::int64_t>::min();
};

HistoryStoreWriter::HistoryStoreWriter(fs::path target, Options options) : impl_(std::make_unique<Impl>()) {
  if (options.num_parts < 1) throw ConfigError("num_parts", fmt::format("got {}, expected >= 1", options.num_parts));
  if (is_non_empty_directory(target) && !options.overwrite) {
    throw DataError(
        fmt::format("{}: target directory exists and is not empty; pass --overwrite to replace it", target.string()));
  }
  std::error_code ec;
  if (fs::exists(target, ec) && !fs::is_directory(target, ec)) {
    throw DataError(fmt::format("{}: target exists and is not a directory", target.string()));
  }
  impl_->target = target;
  impl_->options = options;
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  fs::create_directories(parent);
  remove_stale_temporaries(parent, target.filename().string());
  impl_->temporary = parent / fmt::format(".{}.tmp-{}", target.filename().string(), ::getpid());
  try {
    writing(target, [&] {
      fs::remove_all(impl_->temporary);
      fs::create_directories(impl_->temporary);
      impl_->parts.resize(options.num_parts);
      for (int p = 0; p < options.num_parts; ++p) {
        auto& part = impl_->parts[p];
        part.file = h5::File::create(impl_->temporary / part_file_name(p), /*checksums=*/true);
        part.file.create_group("/users");
        part.file.create_group("/events");
        part.items = h5::AppendableDataset<std::int32_t>(part.file, "/events/item", kEventChunk);
        part.times = h5::AppendableDataset<std::int64_t>(part.file, "/events/time", kEventChunk);
        if (options.with_ratings) part.ratings = h5::AppendableDataset<float>(part.file, "/events/rating", kEventChunk);
      }
    });
  } catch (...) {
    // No destructor runs for a constructor that throws.
    impl_->parts.clear();
    std::error_code ignored;
    fs::remove_all(impl_->temporary, ignored);
    throw;
  }
}

HistoryStoreWriter::~HistoryStoreWriter() {
  if (!impl_ || impl_->committed) return;
  impl_->parts.clear();  // close files before removing them
  std::error_code ec;
  fs::remove_all(impl_->temporary, ec);
}

const fs::path& HistoryStoreWriter::temporary_path() const { return impl_->temporary; }

void HistoryStoreWriter::add_user(std::int64_t raw_user_id, std::span<const std::int32_t> items,
                                  std::span<const std::int64_t> times, std::span<const float> ratings) {
  LONGREC_CHECK(items.size() == times.size(), "items ({}) and times ({}) differ in length", items.size(), times.size());
  LONGREC_CHECK(!impl_->options.with_ratings || ratings.size() == items.size(), "ratings missing for user {}",
                raw_user_id);
  // Readers refuse a store whose events are out of time order, or whose ratings are not numbers.
  for (std::size_t i = 1; i < times.size(); ++i) {
    if (times[i] < times[i - 1]) {
      throw DataError(
          fmt::format("{}: user {}: event {} at time {} comes after time {}; a user's events must be "
                      "in time order",
                      impl_->target.string(), raw_user_id, i, times[i], times[i - 1]));
    }
  }
  for (std::size_t i = 0; i < ratings.size(); ++i) {
    if (!std::isfinite(ratings[i])) {
      throw DataError(fmt::format("{}: user {}: event {} has rating {}; ratings must be finite numbers",
                                  impl_->target.string(), raw_user_id, i, ratings[i]));
    }
  }
  auto& part = impl_->parts[part_of_user(raw_user_id, impl_->options.num_parts)];
  part.item_buffer.insert(part.item_buffer.end(), items.begin(), items.end());
  part.time_buffer.insert(part.time_buffer.end(), times.begin(), times.end());
  if (impl_->options.with_ratings) part.rating_buffer.insert(part.rating_buffer.end(), ratings.begin(), ratings.end());
  part.user_ids.push_back(raw_user_id);
  part.offsets.push_back(part.offsets.back() + static_cast<std::int64_t>(items.size()));
  if (!times.empty()) {
    impl_->min_time = std::min(impl_->min_time, *std::min_element(times.begin(), times.end()));
    impl_->max_time = std::max(impl_->max_time, *std::max_element(times.begin(), times.end()));
  }
  ++impl_->num_users;
  impl_->num_events += static_cast<std::int64_t>(items.size());
  if (part.item_buffer.size() >= kFlushEvents) writing(impl_->target, [&] { part.flush(); });
}

void HistoryStoreWriter::set_items(std::vector<std::int64_t> raw_ids, std::vector<std::int64_t> counts,
                                   std::vector<std::string> text) {
  LONGREC_CHECK(raw_ids.size() == counts.size(), "item raw ids and counts differ in length");
  LONGREC_CHECK(text.empty() || text.size() == raw_ids.size(), "item text has {} entries for {} items", text.size(),
                raw_ids.size());
  impl_->item_raw_ids = std::move(raw_ids);
  impl_->item_counts = std::move(counts);
  impl_->item_text = std::move(text);
  impl_->items_set = true;
}

StoreMeta HistoryStoreWriter::commit(const StoreMeta& description) {
  auto& s = *impl_;
  LONGREC_CHECK(s.items_set, "set_items() must be called before commit()");
  LONGREC_CHECK(!s.committed, "commit() called twice");
  StoreMeta meta = description;
  meta.num_users = s.num_users;
  meta.num_items = static_cast<std::int64_t>(s.item_raw_ids.size());
  meta.num_events = s.num_events;
  meta.num_parts = s.options.num_parts;
  meta.has_ratings = s.options.with_ratings;
  meta.has_item_text = !s.item_text.empty();
  meta.min_time = s.num_events > 0 ? s.min_time : 0;
  meta.max_time = s.num_events > 0 ? s.max_time : 0;

  writing(s.target, [&] { write_files(meta); });
  return meta;
}

void HistoryStoreWriter::write_files(const StoreMeta& meta) {
  auto& s = *impl_;
  for (int p = 0; p < meta.num_parts; ++p) {
    auto& part = s.parts[p];
    part.flush();
    part.file.write<std::int64_t>("/users/raw_id", part.user_ids);
    part.file.write<std::int64_t>("/users/offsets", part.offsets);
    part.file.write_attr("format", kHistoryStoreFormat);
    part.file.write_attr("version", kHistoryStoreVersion);
    part.file.write_attr("part", p);
    part.file.write_attr("num_users", static_cast<std::int64_t>(part.user_ids.size()));
    part.file.write_attr("num_events", part.offsets.back());
    part.close();
  }

  {
    auto file = h5::File::create(s.temporary / "meta.h5", /*checksums=*/true);
    file.write_attr("format", kHistoryStoreFormat);
    file.write_attr("version", kHistoryStoreVersion);
    file.write_attr("num_users", meta.num_users);
    file.write_attr("num_items", meta.num_items);
    file.write_attr("num_events", meta.num_events);
    file.write_attr("num_parts", static_cast<std::int64_t>(meta.num_parts));
    file.write_attr("time_is_ordinal", static_cast<std::int64_t>(meta.time_is_ordinal));
    file.write_attr("has_ratings", static_cast<std::int64_t>(meta.has_ratings));
    file.write_attr("item_order", meta.item_order);
    file.write_attr("source", meta.source);
    file.write_attr("source_checksum", meta.source_checksum);
    file.write_attr("min_time", meta.min_time);
    file.write_attr("max_time", meta.max_time);
    file.create_group("/items");
    file.write<std::int64_t>("/items/raw_id", s.item_raw_ids);
    file.write<std::int64_t>("/items/count", s.item_counts);
    if (meta.has_item_text) file.write_strings("/items/text", s.item_text);
    file.close();
  }

  for (const auto& entry : fs::directory_iterator(s.temporary)) fsync_path(entry.path());
  fsync_path(s.temporary);

  // Swap into place: the target name only ever names a complete dataset.
  std::error_code ec;
  fs::path old;
  if (fs::exists(s.target, ec)) {
    old = s.target.parent_path() / fmt::format(".{}.old-{}", s.target.filename().string(), ::getpid());
    fs::remove_all(old, ec);
    fs::rename(s.target, old);
  }
  fs::rename(s.temporary, s.target);
  if (!old.empty()) fs::remove_all(old, ec);
  fsync_path(s.target.has_parent_path() ? s.target.parent_path() : fs::path("."));
  s.committed = true;
}

// ---------------------------------------------------------------------------
// Reader

struct HistoryStoreReader::Impl {
  struct Part {
    h5::File file;
    std::vector<std::int64_t> offsets;
    std::unique_ptr<h5::Dataset> items, times, ratings;
  };
  fs::path directory;
  StoreMeta meta;
  h5::File meta_file;
  std::vector<Part> parts;
};

namespace {

void check_header(const h5::File& file) {
  if (!file.has_attr("format")) {
    throw DataError(
        fmt::format("{}: not a longrec history store (no 'format' attribute); {}", file.path().string(), kRerunHint));
  }
  const std::string format = file.read_attr_string("format");
  if (format != kHistoryStoreFormat) {
    throw DataError(fmt::format("{}: not a longrec history store (format '{}', expected '{}'); {}",
                                file.path().string(), format, kHistoryStoreFormat, kRerunHint));
  }
  const std::int64_t version = file.read_attr_int("version");
  if (version != kHistoryStoreVersion) {
    throw DataError(fmt::format("{}: history store version {}, this build reads version {}; {}", file.path().string(),
                                version, kHistoryStoreVersion, kRerunHint));
  }
}

}  // namespace

HistoryStoreReader::HistoryStoreReader(const fs::path& directory) : impl_(std::make_unique<Impl>()) {
  auto& s = *impl_;
  s.directory = directory;
  std::error_code ec;
  if (!fs::is_directory(directory, ec)) {
    throw DataError(fmt::format("{}: dataset directory not found; create it with `longrec prepare` or `longrec synth`",
                                directory.string()));
  }
  // Any HDF5-level failure below is rethrown with the hint appended.
  try {
    s.meta_file = h5::File::open(directory / "meta.h5", kRerunHint);
    const auto& m = s.meta_file;
    check_header(m);
    s.meta.num_users = m.read_attr_int("num_users");
    s.meta.num_items = m.read_attr_int("num_items");
    s.meta.num_events = m.read_attr_int("num_events");
    s.meta.num_parts = static_cast<int>(m.read_attr_int("num_parts"));
    s.meta.time_is_ordinal = m.read_attr_int("time_is_ordinal") != 0;
    s.meta.has_ratings = m.read_attr_int("has_ratings") != 0;
    s.meta.item_order = m.read_attr_string("item_order");
    s.meta.source = m.read_attr_string("source");
    s.meta.source_checksum = m.read_attr_string("source_checksum");
    s.meta.min_time = m.read_attr_int("min_time");
    s.meta.max_time = m.read_attr_int("max_time");
    s.meta.has_item_text = m.has("/items/text");
    if (s.meta.num_users < 0 || s.meta.num_items < 0 || s.meta.num_events < 0 || s.meta.num_parts < 1) {
      throw DataError(fmt::format("{}: invalid counts (users {}, items {}, events {}, parts {}); {}", m.path().string(),
                                  s.meta.num_users, s.meta.num_items, s.meta.num_events, s.meta.num_parts, kRerunHint));
    }
    for (const char* name : {"/items/raw_id", "/items/count"}) {
      if (static_cast<std::int64_t>(m.length(name)) != s.meta.num_items) {
        throw DataError(fmt::format("{}: has {} entries, expected num_items = {}; {}", m.where(name), m.length(name),
                                    s.meta.num_items, kRerunHint));
      }
    }

    std::int64_t users = 0, events = 0;
    s.parts.resize(s.meta.num_parts);
    for (int p = 0; p < s.meta.num_parts; ++p) {
      auto& part = s.parts[p];
      part.file = h5::File::open(directory / part_file_name(p), kRerunHint);
      check_header(part.file);
      if (part.file.read_attr_int("part") != p) {
        throw DataError(fmt::format("{}: attribute 'part' is {}, expected {}; {}", part.file.path().string(),
                                    part.file.read_attr_int("part"), p, kRerunHint));
      }
      part.offsets = part.file.read<std::int64_t>("/users/offsets");
      const auto num_users = part.file.length("/users/raw_id");
      if (part.offsets.size() != num_users + 1) {
        throw DataError(fmt::format("{}: has {} entries, expected num users + 1 = {}; {}",
                                    part.file.where("/users/offsets"), part.offsets.size(), num_users + 1, kRerunHint));
      }
      part.items = std::make_unique<h5::Dataset>(part.file.dataset("/events/item"));
      part.times = std::make_unique<h5::Dataset>(part.file.dataset("/events/time"));
      if (s.meta.has_ratings) part.ratings = std::make_unique<h5::Dataset>(part.file.dataset("/events/rating"));
      const auto n = static_cast<std::int64_t>(part.items->size());
      if (part.offsets.front() != 0 || part.offsets.back() != n ||
          !std::is_sorted(part.offsets.begin(), part.offsets.end()) ||
          static_cast<std::int64_t>(part.times->size()) != n ||
          (part.ratings && static_cast<std::int64_t>(part.ratings->size()) != n)) {
        throw DataError(
            fmt::format("{}: offsets are inconsistent with /events/item ({} events) and /events/time ({}); {}",
                        part.file.where("/users/offsets"), n, part.times->size(), kRerunHint));
      }
      users += static_cast<std::int64_t>(num_users);
      events += n;
    }
    if (users != s.meta.num_users || events != s.meta.num_events) {
      throw DataError(fmt::format("{}: parts hold {} users and {} events, meta.h5 says {} and {}; {}",
                                  directory.string(), users, events, s.meta.num_users, s.meta.num_events, kRerunHint));
    }
  } catch (const DataError& e) {
    rethrow_with_hint(e);
  }
}

HistoryStoreReader::~HistoryStoreReader() = default;
HistoryStoreReader::HistoryStoreReader(HistoryStoreReader&&) noexcept = default;

const StoreMeta& HistoryStoreReader::meta() const { return impl_->meta; }
const fs::path& HistoryStoreReader::directory() const { return impl_->directory; }
int HistoryStoreReader::num_parts() const { return impl_->meta.num_parts; }
std::int64_t HistoryStoreReader::part_num_users(int part) const {
  return static_cast<std::int64_t>(impl_->parts.at(part).offsets.size()) - 1;
}
std::span<const std::int64_t> HistoryStoreReader::part_offsets(int part) const { return impl_->parts.at(part).offsets; }
std::vector<std::int64_t> HistoryStoreReader::part_user_ids(int part) const {
  return impl_->parts.at(part).file.read<std::int64_t>("/users/raw_id");
}

void HistoryStoreReader::read_events(int part, std::int64_t begin, std::int64_t end, std::int32_t* items,
                                     std::int64_t* times) const {
  const auto& p = impl_->parts.at(part);
  const auto count = static_cast<hsize_t>(end - begin);
  try {
    p.items->read_range(static_cast<hsize_t>(begin), count, items);
    p.times->read_range(static_cast<hsize_t>(begin), count, times);
  } catch (const DataError& e) {
    rethrow_with_hint(e);
  }
  const std::int32_t max_item = static_cast<std::int32_t>(impl_->meta.num_items);
  for (hsize_t i = 0; i < count; ++i) {
    if (items[i] < 1 || items[i] > max_item) {
      throw DataError(fmt::format("{}: event {} has item id {}, outside 1..{}; {}", p.items->where(),
                                  begin + static_cast<std::int64_t>(i), items[i], max_item, kRerunHint));
    }
  }
}

void HistoryStoreReader::read_users(int part, std::int64_t first_user, std::int64_t end_user, std::int32_t* items,
                                    std::int64_t* times) const {
  const auto offsets = part_offsets(part);
  LONGREC_CHECK(0 <= first_user && first_user <= end_user && end_user < static_cast<std::int64_t>(offsets.size()),
                "users [{}, {}) outside part {}'s {} users", first_user, end_user, part, offsets.size() - 1);
  const std::int64_t base = offsets[first_user];
  read_events(part, base, offsets[end_user], items, times);
  for (auto u = first_user; u < end_user; ++u) {
    for (auto e = offsets[u] + 1; e < offsets[u + 1]; ++e) {
      if (times[e - base] >= times[e - base - 1]) continue;
      const auto raw_id = part_user_ids(part).at(static_cast<std::size_t>(u));
      throw DataError(fmt::format(
          "{}: user {} has events out of time order (event {} at time {} after time {}); the store is corrupt "
          "or was not written by longrec; {}",
          part_path(part).string(), raw_id, e - offsets[u], times[e - base], times[e - base - 1], kRerunHint));
    }
  }
}

bool HistoryStoreReader::part_has_checksums(int part) const {
  const auto& p = impl_->parts.at(part);
  return p.items->has_checksum() && p.times->has_checksum() && (!p.ratings || p.ratings->has_checksum());
}

fs::path HistoryStoreReader::part_path(int part) const { return impl_->parts.at(part).file.path(); }

void HistoryStoreReader::read_ratings(int part, std::int64_t begin, std::int64_t end, float* ratings) const {
  const auto& p = impl_->parts.at(part);
  if (!p.ratings) throw DataError(fmt::format("{}: the store has no ratings", impl_->directory.string()));
  p.ratings->read_range(static_cast<hsize_t>(begin), static_cast<hsize_t>(end - begin), ratings);
}

std::vector<std::int64_t> HistoryStoreReader::item_raw_ids() const {
  return impl_->meta_file.read<std::int64_t>("/items/raw_id");
}
std::vector<std::int64_t> HistoryStoreReader::item_counts() const {
  return impl_->meta_file.read<std::int64_t>("/items/count");
}
std::vector<std::string> HistoryStoreReader::item_text() const {
  if (!impl_->meta.has_item_text) return {};
  return impl_->meta_file.read_strings("/items/text");
}

}  // namespace longrec::data
