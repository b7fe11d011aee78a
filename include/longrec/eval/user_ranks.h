// The rank of each user's held-out item, one row per user, so that two models
// evaluated on the same users can be compared user by user (a paired test,
// eval/paired_test.h) instead of by their means alone. Torch-free.
//
// File format (TSV, one header line, then one row per user, any order):
//   user<TAB>history_events<TAB>rank<TAB>target<TAB>target_events
// user: raw user id; history_events: events before the held-out one (the
// whole history, not the model's window); rank: 0-based rank of the held-out
// item among all items, the history excluded (as in retrieval.h); target: the
// held-out item (dense id); target_events: that item's events in the whole
// dataset, the held-out ones included (`longrec compare
// --max_target_events` slices users whose target is rare: cold items). Files
// of the first three columns (written before the last two) are read too.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "longrec/eval/ranking_metrics.h"

namespace longrec::eval {

struct UserRank {
  std::int64_t user = 0;
  std::int64_t history_events = 0;
  std::int64_t rank = 0;
  std::int64_t target = -1;         // -1: not recorded
  std::int64_t target_events = -1;  // -1: not recorded
  friend bool operator==(const UserRank&, const UserRank&) = default;
};

// The per-user value of one ranking metric ("hr@10", "ndcg@10", "mrr", any
// name RankingMetrics::values() has); its mean over users is that metric.
// Throws ConfigError(key) for an unknown name.
double metric_of_rank(std::string_view metric, std::int64_t rank, const std::string& key = "metric");
// The names RankingMetrics::values() has for these cutoffs: hr@K..., ndcg@K..., mrr.
std::vector<std::string> metric_names(const std::vector<int>& cutoffs = default_cutoffs());

// Written to a temporary file and renamed: a reader never sees half a file.
void write_user_ranks(const std::filesystem::path& path, const std::vector<UserRank>& rows);
// Throws DataError naming the file (and line) for a missing file, a wrong
// header, a malformed row or a user listed twice.
std::vector<UserRank> read_user_ranks(const std::filesystem::path& path);

}  // namespace longrec::eval
