// Ranking metrics from the 0-based rank of each held-out item among all
// candidates: HR@K and NDCG@K for each configured cutoff K (eval.cutoffs;
// default 1, 5, 10, 20, 50, 200), and MRR. Torch-free: ranks come from
// retrieval, sums can be merged across ranks.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace longrec::eval {

// One held-out item at 0-based `rank`: its per-user values, whose means over
// users are the metrics (RankingMetrics and per-user comparisons share them).
double hit_at(std::int64_t rank, std::int64_t cutoff);
double ndcg_at(std::int64_t rank, std::int64_t cutoff);  // one relevant item: 1 / log2(rank + 2) inside the cutoff
double reciprocal_rank(std::int64_t rank);

// The cutoffs reported unless eval.cutoffs says otherwise: @5, @10 and @20 as
// papers report them, @1, @50 and @200 as the HSTU reference and this
// project's earlier tables do.
const std::vector<int>& default_cutoffs();  // 1, 5, 10, 20, 50, 200
// Largest cutoff eval.cutoffs accepts, and how many cutoffs at most.
constexpr int kMaxCutoff = 1'000'000;
constexpr std::size_t kMaxCutoffs = 32;

class RankingMetrics {
 public:
  RankingMetrics() : RankingMetrics(default_cutoffs()) {}
  // cutoffs: strictly increasing, each in [1, kMaxCutoff] (eval/protocol.h parses them).
  explicit RankingMetrics(std::vector<int> cutoffs);

  const std::vector<int>& cutoffs() const { return cutoffs_; }
  void add(std::int64_t rank);
  // Both must have the same cutoffs.
  void merge(const RankingMetrics& other);
  std::int64_t count() const { return count_; }
  // "hr@K" and "ndcg@K" for every cutoff K -> mean over users, and "mrr".
  std::map<std::string, double> values() const;
  // The running sums in a fixed order, for all-reduce across ranks:
  // [count, hr@K in cutoff order..., ndcg@K in cutoff order..., reciprocal rank];
  // ranks with the same cutoffs lay them out identically.
  std::vector<double> sums() const;
  static RankingMetrics from_sums(const std::vector<double>& sums, std::vector<int> cutoffs = default_cutoffs());

 private:
  std::vector<int> cutoffs_;
  std::int64_t count_ = 0;
  std::vector<double> hits_, ndcg_;  // [cutoffs]
  double reciprocal_rank_ = 0;
};

// A metric name as RankingMetrics::values() writes it: "hr@10" -> ("hr", 10),
// "ndcg@5" -> ("ndcg", 5), "mrr" -> ("mrr", 0); anything else (a slice key
// such as "hist>512/hr@10" included) -> ("", 0).
std::pair<std::string_view, std::int64_t> parse_metric_name(std::string_view name);

// "HR@1 0.0662  HR@5 ...  NDCG@1 ...  MRR 0.1349": every hr@K and ndcg@K of
// `values` by increasing K, then MRR (keys with a slice prefix are left out).
std::string format_metrics(const std::map<std::string, double>& values);

}  // namespace longrec::eval
