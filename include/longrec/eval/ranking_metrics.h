// Ranking metrics from the 0-based rank of each held-out item among all
// candidates: HR@{1,10,50,200}, NDCG@{10,50,200}, MRR. Torch-free: ranks come
// from retrieval, sums can be merged across ranks.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace longrec::eval {

// One held-out item at 0-based `rank`: its per-user values, whose means over
// users are the metrics (RankingMetrics and per-user comparisons share them).
double hit_at(std::int64_t rank, std::int64_t cutoff);
double ndcg_at(std::int64_t rank, std::int64_t cutoff);  // one relevant item: 1 / log2(rank + 2) inside the cutoff
double reciprocal_rank(std::int64_t rank);

class RankingMetrics {
 public:
  static const std::vector<int>& hit_cutoffs();   // 1, 10, 50, 200
  static const std::vector<int>& ndcg_cutoffs();  // 10, 50, 200

  void add(std::int64_t rank);
  void merge(const RankingMetrics& other);
  std::int64_t count() const { return count_; }
  // "hr@10" -> mean over users, ..., "mrr".
  std::map<std::string, double> values() const;
  // The running sums in a fixed order (for all-reduce across ranks).
  std::vector<double> sums() const;
  static RankingMetrics from_sums(const std::vector<double>& sums);

 private:
  std::int64_t count_ = 0;
  std::vector<double> hits_ = std::vector<double>(4, 0.0);
  std::vector<double> ndcg_ = std::vector<double>(3, 0.0);
  double reciprocal_rank_ = 0;
};

std::string format_metrics(const std::map<std::string, double>& values);

}  // namespace longrec::eval
