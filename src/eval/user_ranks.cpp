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

constexpr std::string_view kHeader = "user\thistory_events\trank";

// "hr@10" -> ("hr", 10); "mrr" -> ("mrr", 0); anything else -> ("", 0).
std::pair<std::string_view, std::int64_t> parse_metric(std::string_view name) {
  if (name == "mrr") return {"mrr", 0};
  const auto at = name.find('@');
  if (at == std::string_view::npos) return {"", 0};
  const auto kind = name.substr(0, at);
  if (kind != "hr" && kind != "ndcg") return {"", 0};
  std::int64_t cutoff = 0;
  const auto digits = name.substr(at + 1);
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), cutoff);
  if (error != std::errc() || end != digits.data() + digits.size() || cutoff < 1) return {"", 0};
  return {kind, cutoff};
}

}  // namespace

const std::vector<std::string>& metric_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const int cutoff : RankingMetrics::hit_cutoffs()) out.push_back(fmt::format("hr@{}", cutoff));
    for (const int cutoff : RankingMetrics::ndcg_cutoffs()) out.push_back(fmt::format("ndcg@{}", cutoff));
    out.push_back("mrr");
    return out;
  }();
  return names;
}

double metric_of_rank(std::string_view metric, std::int64_t rank, const std::string& key) {
  const auto [kind, cutoff] = parse_metric(metric);
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
    for (const auto& row : rows) out << row.user << '\t' << row.history_events << '\t' << row.rank << '\n';
  });
}

std::vector<UserRank> read_user_ranks(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw DataError(fmt::format("{}: cannot open per-user ranks file", path.string()));
  std::string line;
  if (!std::getline(in, line) || line != kHeader) {
    throw DataError(fmt::format("{}:1: expected the header '{}' (a file written by `longrec eval --ranks`)",
                                path.string(), "user<TAB>history_events<TAB>rank"));
  }
  std::vector<UserRank> rows;
  std::unordered_set<std::int64_t> users;
  for (std::int64_t number = 2; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    std::int64_t fields[3];
    const char* cursor = line.data();
    const char* end = line.data() + line.size();
    for (int f = 0; f < 3; ++f) {
      const auto [next, error] = std::from_chars(cursor, end, fields[f]);
      const char expected_after = f < 2 ? '\t' : '\0';
      const bool ends_right = f < 2 ? (next != end && *next == expected_after) : next == end;
      if (error != std::errc() || next == cursor || !ends_right || (f > 0 && fields[f] < 0)) {
        throw DataError(
            fmt::format("{}:{}: expected 'user<TAB>history_events<TAB>rank' with integers "
                        "(history_events, rank >= 0), got '{}'",
                        path.string(), number, line.substr(0, 80)));
      }
      cursor = next + (f < 2 ? 1 : 0);
    }
    if (!users.insert(fields[0]).second) {
      throw DataError(fmt::format("{}:{}: user {} listed twice", path.string(), number, fields[0]));
    }
    rows.push_back({fields[0], fields[1], fields[2]});
  }
  if (in.bad()) throw DataError(fmt::format("{}: read error", path.string()));
  return rows;
}

}  // namespace longrec::eval
