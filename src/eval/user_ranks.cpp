#include "longrec/eval/user_ranks.h"

#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <unordered_set>

#include "longrec/core/error.h"
#include "longrec/core/atomic_file.h"
#include "longrec/eval/ranking_metrics.h"

namespace longrec::eval {

namespace {

constexpr std::string_view kHeader = "user\thistory_events\trank\ttarget\ttarget_events";
constexpr std::string_view kHeaderWithoutTargets = "user\thistory_events\trank";

}  // namespace

std::vector<std::string> metric_names(const std::vector<int>& cutoffs) {
  // RankingMetrics::values()'s names in the order its sums() lays them out.
  std::vector<std::string> out;
  for (const int cutoff : cutoffs) out.push_back(fmt::format("hr@{}", cutoff));
  for (const int cutoff : cutoffs) out.push_back(fmt::format("ndcg@{}", cutoff));
  out.push_back("mrr");
  return out;
}

double metric_of_rank(std::string_view metric, std::int64_t rank, const std::string& key) {
  const auto [kind, cutoff] = parse_metric_name(metric);
  if (kind.empty()) {
    throw ConfigError(key, fmt::format("unknown metric '{}': expected hr@K, ndcg@K (K >= 1) or mrr", metric));
  }
  LONGREC_CHECK(rank >= 0, "negative rank {}", rank);
  if (kind == "mrr") return reciprocal_rank(rank);
  return kind == "hr" ? hit_at(rank, cutoff) : ndcg_at(rank, cutoff);
}

void write_user_ranks(const std::filesystem::path& path, const std::vector<UserRank>& rows) {
  write_file_atomically(path, [&](std::ostream& out) {
    out << kHeader << '\n';
    for (const auto& row : rows) {
      out << row.user << '\t' << row.history_events << '\t' << row.rank << '\t' << row.target << '\t'
          << row.target_events << '\n';
    }
  });
}

std::vector<UserRank> read_user_ranks(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw DataError(fmt::format("{}: cannot open per-user ranks file", path.string()));
  std::string line;
  const bool has_header = static_cast<bool>(std::getline(in, line));
  const bool with_targets = has_header && line == kHeader;
  if (!has_header || (!with_targets && line != kHeaderWithoutTargets)) {
    throw DataError(fmt::format("{}:1: expected the header '{}' (a file written by `longrec eval --ranks`)",
                                path.string(), "user<TAB>history_events<TAB>rank<TAB>target<TAB>target_events"));
  }
  const int columns = with_targets ? 5 : 3;
  const std::string_view layout = with_targets ? "user<TAB>history_events<TAB>rank<TAB>target<TAB>target_events"
                                               : "user<TAB>history_events<TAB>rank";
  std::vector<UserRank> rows;
  std::unordered_set<std::int64_t> users;
  for (std::int64_t number = 2; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    std::int64_t fields[5] = {0, 0, 0, -1, -1};
    const char* cursor = line.data();
    const char* end = line.data() + line.size();
    for (int f = 0; f < columns; ++f) {
      const bool last = f == columns - 1;
      const auto [next, error] = std::from_chars(cursor, end, fields[f]);
      const bool ends_right = !last ? (next != end && *next == '\t') : next == end;
      // Counts and ranks are >= 0; a target of -1 means "not recorded".
      const bool in_range = f == 0 || (f >= 3 ? fields[f] >= -1 : fields[f] >= 0);
      if (error != std::errc() || next == cursor || !ends_right || !in_range) {
        throw DataError(fmt::format("{}:{}: expected '{}' with integers (history_events, rank >= 0), got '{}'",
                                    path.string(), number, layout, line.substr(0, 80)));
      }
      cursor = next + (last ? 0 : 1);
    }
    if (!users.insert(fields[0]).second) {
      throw DataError(fmt::format("{}:{}: user {} listed twice", path.string(), number, fields[0]));
    }
    rows.push_back({fields[0], fields[1], fields[2], fields[3], fields[4]});
  }
  if (in.bad()) throw DataError(fmt::format("{}: read error", path.string()));
  return rows;
}

}  // namespace longrec::eval
