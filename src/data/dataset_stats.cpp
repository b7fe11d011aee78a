#include "longrec/data/dataset_stats.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <vector>

#include <fmt/format.h>

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

}  // namespace longrec::data
