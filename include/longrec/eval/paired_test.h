// Is model A better than model B on the same users, or is the difference
// noise? Paired statistics over per-user metric values (eval/user_ranks.h):
// the mean difference, a percentile bootstrap confidence interval of it
// (users resampled with replacement, pairs kept together) and the two-sided
// p-value of the paired randomization test (sign flips of the per-user
// differences: exact enumeration when 2^n <= resamples, Monte Carlo with the
// +1 correction otherwise). Deterministic for a seed. Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "longrec/eval/user_ranks.h"

namespace longrec::eval {

struct PairedTestOptions {
  int resamples = 10000;
  double confidence = 0.95;
  std::uint64_t seed = 0;
};

struct PairedTestResult {
  std::int64_t users = 0;
  double mean_a = 0, mean_b = 0;
  double delta = 0;                // mean_a - mean_b
  double standard_error = 0;       // of delta: sd(a_i - b_i) / sqrt(n)
  double ci_low = 0, ci_high = 0;  // bootstrap interval of delta
  double p_value = 1;              // H0: a_i - b_i symmetric around 0
  bool exact = false;              // p_value from all 2^n sign patterns
};

// a[i] and b[i] belong to the same user; sizes must match (>= 1).
PairedTestResult paired_test(const std::vector<double>& a, const std::vector<double>& b,
                             const PairedTestOptions& options = {});

// Rows of two evaluations matched by user; only users with more than
// `min_history` events (0: all) and, when max_target_events >= 0, whose
// held-out item has at most that many events in the dataset (both files must
// then record targets, and the same ones). Throws DataError naming both files
// when the user sets or their targets differ (the same users must have been
// evaluated on the same split).
struct PairedRanks {
  std::vector<std::int64_t> rank_a, rank_b;
};
PairedRanks pair_by_user(const std::vector<UserRank>& a, const std::string& name_a, const std::vector<UserRank>& b,
                         const std::string& name_b, std::int64_t min_history = 0, std::int64_t max_target_events = -1);

}  // namespace longrec::eval
