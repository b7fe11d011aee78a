#include "longrec/eval/ranking_metrics.h"

#include <cmath>

#include <fmt/format.h>

#include "longrec/core/error.h"

namespace longrec::eval {

const std::vector<int>& RankingMetrics::hit_cutoffs() {
  static const std::vector<int> cutoffs{1, 10, 50, 200};
  return cutoffs;
}
const std::vector<int>& RankingMetrics::ndcg_cutoffs() {
  static const std::vector<int> cutoffs{10, 50, 200};
  return cutoffs;
}

double hit_at(std::int64_t rank, std::int64_t cutoff) { return rank < cutoff ? 1.0 : 0.0; }

double ndcg_at(std::int64_t rank, std::int64_t cutoff) {
  // One relevant item: DCG = 1 / log2(rank + 2), ideal DCG = 1.
  return rank < cutoff ? 1.0 / std::log2(static_cast<double>(rank) + 2.0) : 0.0;
}

double reciprocal_rank(std::int64_t rank) { return 1.0 / static_cast<double>(rank + 1); }

void RankingMetrics::add(std::int64_t rank) {
  LONGREC_CHECK(rank >= 0, "negative rank {}", rank);
  ++count_;
  for (std::size_t i = 0; i < hit_cutoffs().size(); ++i) hits_[i] += hit_at(rank, hit_cutoffs()[i]);
  for (std::size_t i = 0; i < ndcg_cutoffs().size(); ++i) ndcg_[i] += ndcg_at(rank, ndcg_cutoffs()[i]);
  reciprocal_rank_ += reciprocal_rank(rank);
}

void RankingMetrics::merge(const RankingMetrics& other) {
  count_ += other.count_;
  for (std::size_t i = 0; i < hits_.size(); ++i) hits_[i] += other.hits_[i];
  for (std::size_t i = 0; i < ndcg_.size(); ++i) ndcg_[i] += other.ndcg_[i];
  reciprocal_rank_ += other.reciprocal_rank_;
}

std::map<std::string, double> RankingMetrics::values() const {
  std::map<std::string, double> out;
  const double n = count_ > 0 ? static_cast<double>(count_) : 1.0;
  for (std::size_t i = 0; i < hits_.size(); ++i) out[fmt::format("hr@{}", hit_cutoffs()[i])] = hits_[i] / n;
  for (std::size_t i = 0; i < ndcg_.size(); ++i) out[fmt::format("ndcg@{}", ndcg_cutoffs()[i])] = ndcg_[i] / n;
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

RankingMetrics RankingMetrics::from_sums(const std::vector<double>& s) {
  LONGREC_CHECK(s.size() == 9, "expected 9 sums, got {}", s.size());
  RankingMetrics m;
  m.count_ = static_cast<std::int64_t>(s[0]);
  for (std::size_t i = 0; i < 4; ++i) m.hits_[i] = s[1 + i];
  for (std::size_t i = 0; i < 3; ++i) m.ndcg_[i] = s[5 + i];
  m.reciprocal_rank_ = s[8];
  return m;
}

std::string format_metrics(const std::map<std::string, double>& v) {
  return fmt::format(
      "HR@1 {:.4f}  HR@10 {:.4f}  HR@50 {:.4f}  HR@200 {:.4f}  NDCG@10 {:.4f}  NDCG@50 {:.4f}  "
      "NDCG@200 {:.4f}  MRR {:.4f}",
      v.at("hr@1"), v.at("hr@10"), v.at("hr@50"), v.at("hr@200"), v.at("ndcg@10"), v.at("ndcg@50"), v.at("ndcg@200"),
      v.at("mrr"));
}

}  // namespace longrec::eval
