#include "longrec/eval/ranking_metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "longrec/core/error.h"

namespace longrec::eval {

const std::vector<int>& default_cutoffs() {
  static const std::vector<int> cutoffs{1, 5, 10, 20, 50, 200};
  return cutoffs;
}

double hit_at(std::int64_t rank, std::int64_t cutoff) { return rank < cutoff ? 1.0 : 0.0; }

double ndcg_at(std::int64_t rank, std::int64_t cutoff) {
  // One relevant item: DCG = 1 / log2(rank + 2), ideal DCG = 1.
  return rank < cutoff ? 1.0 / std::log2(static_cast<double>(rank) + 2.0) : 0.0;
}

double reciprocal_rank(std::int64_t rank) { return 1.0 / static_cast<double>(rank + 1); }

RankingMetrics::RankingMetrics(std::vector<int> cutoffs)
    : cutoffs_(std::move(cutoffs)), hits_(cutoffs_.size(), 0.0), ndcg_(cutoffs_.size(), 0.0) {
  LONGREC_CHECK(!cutoffs_.empty() && cutoffs_.size() <= kMaxCutoffs, "{} cutoffs, expected 1 to {}", cutoffs_.size(),
                kMaxCutoffs);
  for (std::size_t i = 0; i < cutoffs_.size(); ++i) {
    LONGREC_CHECK(cutoffs_[i] >= 1 && cutoffs_[i] <= kMaxCutoff && (i == 0 || cutoffs_[i - 1] < cutoffs_[i]),
                  "cutoffs must be strictly increasing in [1, {}], got {}", kMaxCutoff, fmt::join(cutoffs_, ","));
  }
}

void RankingMetrics::add(std::int64_t rank) {
  LONGREC_CHECK(rank >= 0, "negative rank {}", rank);
  ++count_;
  for (std::size_t i = 0; i < cutoffs_.size(); ++i) {
    hits_[i] += hit_at(rank, cutoffs_[i]);
    ndcg_[i] += ndcg_at(rank, cutoffs_[i]);
  }
  reciprocal_rank_ += reciprocal_rank(rank);
}

void RankingMetrics::merge(const RankingMetrics& other) {
  LONGREC_CHECK(cutoffs_ == other.cutoffs_, "merging metrics of different cutoffs ({} and {})",
                fmt::join(cutoffs_, ","), fmt::join(other.cutoffs_, ","));
  count_ += other.count_;
  for (std::size_t i = 0; i < hits_.size(); ++i) hits_[i] += other.hits_[i];
  for (std::size_t i = 0; i < ndcg_.size(); ++i) ndcg_[i] += other.ndcg_[i];
  reciprocal_rank_ += other.reciprocal_rank_;
}

std::map<std::string, double> RankingMetrics::values() const {
  std::map<std::string, double> out;
  const double n = count_ > 0 ? static_cast<double>(count_) : 1.0;
  for (std::size_t i = 0; i < cutoffs_.size(); ++i) {
    out[fmt::format("hr@{}", cutoffs_[i])] = hits_[i] / n;
    out[fmt::format("ndcg@{}", cutoffs_[i])] = ndcg_[i] / n;
  }
  out["mrr"] = reciprocal_rank_ / n;
  return out;
}

std::vector<double> RankingMetrics::sums() const {
  std::vector<double> s{static_cast<double>(count_)};
  s.insert(s.end(), hits_.begin(), hits_.end());
  s.insert(s.end(), ndcg_.begin(), ndcg_.end());
  s.push_back(reciprocal_rank_);
  return s;
}

RankingMetrics RankingMetrics::from_sums(const std::vector<double>& s, std::vector<int> cutoffs) {
  RankingMetrics m(std::move(cutoffs));
  const std::size_t k = m.cutoffs_.size();
  LONGREC_CHECK(s.size() == 2 + 2 * k, "expected {} sums for {} cutoffs, got {}", 2 + 2 * k, k, s.size());
  m.count_ = static_cast<std::int64_t>(s[0]);
  for (std::size_t i = 0; i < k; ++i) {
    m.hits_[i] = s[1 + i];
    m.ndcg_[i] = s[1 + k + i];
  }
  m.reciprocal_rank_ = s[1 + 2 * k];
  return m;
}

std::pair<std::string_view, std::int64_t> parse_metric_name(std::string_view name) {
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

std::string format_metrics(const std::map<std::string, double>& v) {
  // (kind, K) of every "hr@K" / "ndcg@K" key, by kind then increasing K.
  std::vector<std::pair<std::string_view, std::int64_t>> keys;
  for (const auto& [key, value] : v) {
    const auto parsed = parse_metric_name(key);
    if (parsed.first == "hr" || parsed.first == "ndcg") keys.push_back(parsed);
  }
  std::sort(keys.begin(), keys.end(),
            [](const auto& a, const auto& b) { return a.first != b.first ? a.first == "hr" : a.second < b.second; });
  std::string out;
  for (const auto& [kind, cutoff] : keys) {
    out += fmt::format("{}{}@{} {:.4f}", out.empty() ? "" : "  ", kind == "hr" ? "HR" : "NDCG", cutoff,
                       v.at(fmt::format("{}@{}", kind, cutoff)));
  }
  if (v.contains("mrr")) out += fmt::format("{}MRR {:.4f}", out.empty() ? "" : "  ", v.at("mrr"));
  return out;
}

}  // namespace longrec::eval
