#include "longrec/data/dataset_stats.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <limits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "longrec/core/error.h"

namespace longrec::data {

DatasetStats compute_dataset_stats(const HistoryStoreReader& store) {
  DatasetStats stats;
  stats.meta = store.meta();
  std::vector<std::int64_t> lengths;
  lengths.reserve(static_cast<std::size_t>(stats.meta.num_users));
  for (int p = 0; p < store.num_parts(); ++p) {
    const auto offsets = store.part_offsets(p);
    for (std::size_t u = 0; u + 1 < offsets.size(); ++u) lengths.push_back(offsets[u + 1] - offsets[u]);
  }
  if (lengths.empty()) return stats;
  std::sort(lengths.begin(), lengths.end());
  // Nearest-rank percentile.
  const auto percentile = [&](double q) {
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(lengths.size())));
    return lengths[std::min(lengths.size() - 1, rank == 0 ? 0 : rank - 1)];
  };
  stats.min_length = lengths.front();
  stats.max_length = lengths.back();
  stats.p50 = percentile(0.5);
  stats.p90 = percentile(0.9);
  stats.p99 = percentile(0.99);
  stats.mean_length = static_cast<double>(stats.meta.num_events) / static_cast<double>(lengths.size());
  for (auto n : lengths) {
    stats.users_at_least_200 += n >= 200;
    stats.users_at_least_1000 += n >= 1000;
  }
  return stats;
}

namespace {
std::string utc_date(std::int64_t seconds) {
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
  return text;
}
}  // namespace

std::string format_dataset_stats(const DatasetStats& s, const std::filesystem::path& directory) {
  const auto& m = s.meta;
  std::string out;
  out += fmt::format("dataset          {}\n", directory.string());
  out += fmt::format("source           {}\n", m.source);
  if (!m.source_checksum.empty()) out += fmt::format("source checksum  {}\n", m.source_checksum);
  out += fmt::format("users            {}\n", m.num_users);
  out += fmt::format("items            {} (dense ids by {})\n", m.num_items,
                     m.item_order == "frequency" ? "frequency" : "first appearance");
  out += fmt::format("events           {}\n", m.num_events);
  out += fmt::format("parts            {}\n", m.num_parts);
  out += fmt::format("history length   mean {:.1f}  min {}  p50 {}  p90 {}  p99 {}  max {}\n", s.mean_length,
                     s.min_length, s.p50, s.p90, s.p99, s.max_length);
  out += fmt::format("long histories   {} users >= 200 events, {} users >= 1000\n", s.users_at_least_200,
                     s.users_at_least_1000);
  if (m.time_is_ordinal) {
    out += fmt::format("time             ordinal (event positions {}..{}), no timestamps\n", m.min_time, m.max_time);
  } else {
    out += fmt::format("time             {} .. {} UTC\n", utc_date(m.min_time), utc_date(m.max_time));
  }
  out += fmt::format("ratings          {}\n", m.has_ratings ? "yes" : "no");
  out += fmt::format("item text        {}\n", m.has_item_text ? "yes" : "no");
  return out;
}

namespace {

// Users of a part read together: whole users, about this many events.
constexpr std::int64_t kVerifyBlockEvents = 1 << 20;

// The checks of verify_dataset; the first failure throws DataError (or
// SystemError) naming it, which verify_dataset turns into report.problem.
void verify_or_throw(const HistoryStoreReader& store, VerifyReport& report) {
  const auto& meta = store.meta();
  const auto where = [&](const std::string& what) { return fmt::format("{}: {}", store.directory().string(), what); };
  const auto raw_ids = store.item_raw_ids();
  const auto counts = store.item_counts();
  (void)store.item_text();  // read, and its chunks checked
  report.items = static_cast<std::int64_t>(raw_ids.size());
  {
    std::unordered_map<std::int64_t, std::size_t> first;
    for (std::size_t i = 0; i < raw_ids.size(); ++i) {
      const auto [it, inserted] = first.emplace(raw_ids[i], i);
      if (!inserted) {
        throw DataError(where(fmt::format("meta.h5:/items/raw_id: raw item id {} is both dense id {} and {}",
                                          raw_ids[i], it->second + 1, i + 1)));
      }
    }
  }

  std::vector<std::int64_t> events_per_item(raw_ids.size() + 1, 0);
  std::unordered_set<std::int64_t> seen_users;
  std::int64_t min_time = std::numeric_limits<std::int64_t>::max(), max_time = std::numeric_limits<std::int64_t>::min();
  std::vector<std::int32_t> items;
  std::vector<std::int64_t> times;
  std::vector<float> ratings;
  for (int p = 0; p < store.num_parts(); ++p) {
    const auto part = store.part_path(p).filename().string();
    const auto offsets = store.part_offsets(p);
    const auto users = store.part_user_ids(p);
    for (std::size_t u = 0; u < users.size(); ++u) {
      if (part_of_user(users[u], meta.num_parts) != p) {
        throw DataError(where(fmt::format("{}:/users/raw_id: user {} is in part {}, its id hashes to part {}", part,
                                          users[u], p, part_of_user(users[u], meta.num_parts))));
      }
      if (!seen_users.insert(users[u]).second) {
        throw DataError(where(fmt::format("{}:/users/raw_id: user {} appears twice", part, users[u])));
      }
    }
    const auto num_users = static_cast<std::int64_t>(users.size());
    for (std::int64_t first = 0; first < num_users;) {
      std::int64_t end = first + 1;
      while (end < num_users && offsets[end + 1] - offsets[first] <= kVerifyBlockEvents) ++end;
      const auto count = static_cast<std::size_t>(offsets[end] - offsets[first]);
      items.resize(count);
      times.resize(count);
      store.read_users(p, first, end, items.data(), times.data());  // ids in range, times in order
      ++report.reads;
      if (meta.has_ratings) {
        ratings.resize(count);
        store.read_ratings(p, offsets[first], offsets[end], ratings.data());
        for (std::size_t e = 0; e < count; ++e) {
          if (std::isfinite(ratings[e])) continue;
          const auto at = offsets[first] + static_cast<std::int64_t>(e);
          const auto user = std::upper_bound(offsets.begin(), offsets.end(), at) - offsets.begin() - 1;
          throw DataError(where(fmt::format("{}:/events/rating: user {} has rating {} at event {}", part,
                                            users[static_cast<std::size_t>(user)], ratings[e], at - offsets[user])));
        }
      }
      for (std::size_t e = 0; e < count; ++e) ++events_per_item[static_cast<std::size_t>(items[e])];
      if (count > 0) {
        min_time = std::min(min_time, *std::min_element(times.begin(), times.end()));
        max_time = std::max(max_time, *std::max_element(times.begin(), times.end()));
      }
      report.users += end - first;
      report.events += static_cast<std::int64_t>(count);
      first = end;
    }
    report.parts_with_checksums += store.part_has_checksums(p);
    ++report.parts;
  }
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] != events_per_item[i + 1]) {
      throw DataError(where(fmt::format("meta.h5:/items/count: item {} (raw id {}) has count {}, the events hold {}",
                                        i + 1, raw_ids[i], counts[i], events_per_item[i + 1])));
    }
  }
  if (report.events > 0 && (min_time < meta.min_time || max_time > meta.max_time)) {
    throw DataError(where(fmt::format("event times span {}..{}, outside meta.h5's min_time..max_time {}..{}", min_time,
                                      max_time, meta.min_time, meta.max_time)));
  }
}

}  // namespace

VerifyReport verify_dataset(const HistoryStoreReader& store) {
  VerifyReport report;
  try {
    verify_or_throw(store, report);
  } catch (const Error& e) {
    report.problem = e.what();
  }
  return report;
}

std::string format_verify_report(const VerifyReport& r) {
  const bool ok = r.problem.empty();
  std::string out;
  out += fmt::format("verify           {}\n", ok ? "OK" : "FAILED");
  out += fmt::format("  read           {} events of {} users in {} parts ({} reads), {} items{}\n", r.events, r.users,
                     r.parts, r.reads, r.items, ok ? "" : ", before the problem");
  std::string checksums = "none stored (an older store); not checked";
  if (r.parts_with_checksums > 0) {
    checksums = r.parts_with_checksums == r.parts
                    ? "Fletcher-32 on every chunk"
                    : fmt::format("Fletcher-32 in {} of {} parts", r.parts_with_checksums, r.parts);
    if (ok) checksums += ", all verified";
  }
  out += fmt::format("  checksums      {}\n", checksums);
  if (ok) {
    out += "  checked        item ids in 1..items, times in order per user, offsets, user parts, item counts\n";
  } else {
    out += fmt::format("  first problem  {}\n", r.problem);
  }
  return out;
}

}  // namespace longrec::data
