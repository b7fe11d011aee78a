#include "longrec/eval/paired_test.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "longrec/core/error.h"
#include "longrec/core/rng.h"

namespace longrec::eval {

namespace {

// Linear interpolation between order statistics (numpy's default quantile).
double quantile(const std::vector<double>& sorted, double q) {
  const double position = q * static_cast<double>(sorted.size() - 1);
  const auto below = static_cast<std::size_t>(std::floor(position));
  const auto above = std::min(below + 1, sorted.size() - 1);
  return sorted[below] + (position - static_cast<double>(below)) * (sorted[above] - sorted[below]);
}

}  // namespace

PairedTestResult paired_test(const std::vector<double>& a, const std::vector<double>& b,
                             const PairedTestOptions& options) {
  LONGREC_CHECK(a.size() == b.size() && !a.empty(), "paired test needs two equal, non-empty samples ({} vs {})",
                a.size(), b.size());
  LONGREC_CHECK(options.resamples >= 1 && options.confidence > 0 && options.confidence < 1,
                "resamples {} >= 1 and confidence {} in (0, 1) expected", options.resamples, options.confidence);
  const auto n = a.size();
  const double count = static_cast<double>(n);
  std::vector<double> d(n);
  for (std::size_t i = 0; i < n; ++i) d[i] = a[i] - b[i];
  PairedTestResult r;
  r.users = static_cast<std::int64_t>(n);
  r.mean_a = std::accumulate(a.begin(), a.end(), 0.0) / count;
  r.mean_b = std::accumulate(b.begin(), b.end(), 0.0) / count;
  const double sum = std::accumulate(d.begin(), d.end(), 0.0);
  r.delta = sum / count;
  if (n > 1) {
    double squares = 0;
    for (double x : d) squares += (x - r.delta) * (x - r.delta);
    r.standard_error = std::sqrt(squares / (count - 1) / count);
  }

  // Bootstrap: the mean difference over n users drawn with replacement.
  Rng bootstrap_rng(derive_seed(options.seed, 1));
  std::vector<double> means(static_cast<std::size_t>(options.resamples));
  for (auto& mean : means) {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += d[bootstrap_rng.uniform(n)];
    mean = s / count;
  }
  std::sort(means.begin(), means.end());
  const double tail = (1.0 - options.confidence) / 2.0;
  r.ci_low = quantile(means, tail);
  r.ci_high = quantile(means, 1.0 - tail);

  // Randomization: under H0 each difference is as likely with either sign;
  // p = P(|sum s_i d_i| >= |sum d_i|). Sums that equal the observed one up to
  // rounding count as "as extreme".
  double magnitude = 0;
  for (double x : d) magnitude += std::abs(x);
  const double observed = std::abs(sum) - 1e-12 * magnitude;
  if (n < 63 && (std::uint64_t{1} << n) <= static_cast<std::uint64_t>(options.resamples)) {
    r.exact = true;
    std::uint64_t extreme = 0;
    const std::uint64_t patterns = std::uint64_t{1} << n;
    for (std::uint64_t signs = 0; signs < patterns; ++signs) {
      double s = 0;
      for (std::size_t i = 0; i < n; ++i) s += (signs >> i) & 1 ? -d[i] : d[i];
      extreme += std::abs(s) >= observed;
    }
    r.p_value = static_cast<double>(extreme) / static_cast<double>(patterns);
  } else {
    Rng sign_rng(derive_seed(options.seed, 2));
    std::int64_t extreme = 0;
    for (int k = 0; k < options.resamples; ++k) {
      double s = 0;
      std::uint64_t bits = 0;
      for (std::size_t i = 0; i < n; ++i) {
        if (i % 64 == 0) bits = sign_rng.next();
        s += bits & 1 ? -d[i] : d[i];
        bits >>= 1;
      }
      extreme += std::abs(s) >= observed;
    }
    r.p_value = static_cast<double>(extreme + 1) / static_cast<double>(options.resamples + 1);
  }
  return r;
}

PairedRanks pair_by_user(const std::vector<UserRank>& a, const std::string& name_a, const std::vector<UserRank>& b,
                         const std::string& name_b, std::int64_t min_history, std::int64_t max_target_events) {
  // B's users not yet matched; A's users B lacks. Ordered: the pairs come out by user id.
  std::map<std::int64_t, const UserRank*> unmatched_b;
  for (const auto& row : b) unmatched_b[row.user] = &row;
  std::set<std::int64_t> only_a;
  std::map<std::int64_t, std::pair<std::int64_t, std::int64_t>> ranks;  // user -> (rank in A, rank in B)
  for (const auto& row : a) {
    const auto match = unmatched_b.find(row.user);
    if (match == unmatched_b.end()) {
      only_a.insert(row.user);
      continue;
    }
    if (match->second->history_events != row.history_events) {
      throw DataError(fmt::format("user {} has {} events in {} but {} in {}: not the same dataset and split", row.user,
                                  row.history_events, name_a, match->second->history_events, name_b));
    }
    const auto& other = *match->second;
    if (max_target_events >= 0) {
      if (row.target < 0 || other.target < 0) {
        throw DataError(
            fmt::format("{} has no targets recorded (written before they were): evaluate again with "
                        "`longrec eval --ranks` to slice by target events",
                        row.target < 0 ? name_a : name_b));
      }
      if (row.target != other.target) {
        throw DataError(fmt::format("user {} has target {} in {} but {} in {}: not the same split", row.user,
                                    row.target, name_a, other.target, name_b));
      }
    }
    const bool cold = max_target_events < 0 || row.target_events <= max_target_events;
    if (row.history_events > min_history && cold) ranks[row.user] = {row.rank, other.rank};
    unmatched_b.erase(match);
  }
  if (!only_a.empty() || !unmatched_b.empty()) {
    const auto example = !only_a.empty() ? fmt::format("user {} is only in {}", *only_a.begin(), name_a)
                                         : fmt::format("user {} is only in {}", unmatched_b.begin()->first, name_b);
    throw DataError(
        fmt::format("{} and {} rank different users ({} only in the first, {} only in the second; {}): "
                    "evaluate both on the same dataset and split",
                    name_a, name_b, only_a.size(), unmatched_b.size(), example));
  }
  PairedRanks paired;
  for (const auto& [user, pair] : ranks) {
    paired.rank_a.push_back(pair.first);
    paired.rank_b.push_back(pair.second);
  }
  return paired;
}

}  // namespace longrec::eval
