// `longrec compare`: is one model better than another on the same users, or
// is the difference noise? A paired test over the per-user ranks that
// `longrec eval --ranks` writes.
#include <fmt/format.h>

#include <map>
#include <memory>

#include "commands.h"
#include "longrec/core/config.h"
#include "longrec/core/lists.h"
#include "longrec/core/metrics_log.h"
#include "longrec/eval/paired_test.h"
#include "longrec/eval/user_ranks.h"

namespace longrec::cli {

int run_compare(int argc, const char* const* argv) {
  std::string candidate, baseline, metric_list = "ndcg@10,hr@10", output;
  std::int64_t long_history = 0;
  std::int64_t max_target_events = -1;
  eval::PairedTestOptions test;
  OptionRegistry r("compare",
                   "Paired comparison of two evaluations on the same users: mean difference, bootstrap\n"
                   "confidence interval and randomization-test p-value, for all users and for users with\n"
                   "long histories. Inputs are `longrec eval --ranks FILE` outputs.\n"
                   "Example: longrec compare --candidate tokens.tsv --baseline recent.tsv --long_history 512",
                   "compare");
  r.add("compare", "candidate", &candidate, "per-user ranks of the model under test (A)", check::existing_file());
  r.add("compare", "baseline", &baseline, "per-user ranks of the model it is compared with (B)",
        check::existing_file());
  r.add("compare", "metrics", &metric_list, "comma-separated: hr@K, ndcg@K, mrr");
  r.add("compare", "long_history", &long_history,
        "also compare users whose history is longer than this many events (0 = off)",
        check::in_range<std::int64_t>(0, check::kMaxCount));
  r.add("compare", "max_target_events", &max_target_events,
        "also compare users whose held-out item has at most this many events in the dataset, the cold items "
        "(-1 = off; needs ranks files with targets)",
        check::in_range<std::int64_t>(-1, std::int64_t{1} << 40));
  r.add("compare", "resamples", &test.resamples, "bootstrap and randomization resamples",
        check::in_range(1, 100'000'000));
  r.add("compare", "confidence", &test.confidence, "confidence level of the interval", check::in_range(0.5, 0.999));
  r.add("compare", "seed", &test.seed, "seed of the resampling");
  r.add("compare", "output", &output, "append one JSON line per (slice, metric) to this file", check::writable_path());
  std::vector<std::string> metrics;
  r.constraint([&] {
    metrics = split_list(metric_list);
    if (metrics.empty()) throw ConfigError("compare.metrics", "at least one metric is required");
    for (const auto& metric : metrics) eval::metric_of_rank(metric, 0, "compare.metrics");
  });
  if (!r.parse(argc, argv)) return 0;

  const auto rows_a = eval::read_user_ranks(candidate);
  const auto rows_b = eval::read_user_ranks(baseline);
  struct Slice {
    std::string name;
    std::int64_t min_history = 0, max_target_events = -1;
  };
  std::vector<Slice> slices{{"all", 0, -1}};
  if (long_history > 0) slices.push_back({fmt::format("hist>{}", long_history), long_history, -1});
  if (max_target_events >= 0) slices.push_back({fmt::format("target<={}", max_target_events), 0, max_target_events});

  fmt::print("A = {}\nB = {}\n{:.0f}% bootstrap interval and randomization p-value of A - B, {} resamples\n\n",
             candidate, baseline, 100 * test.confidence, test.resamples);
  fmt::print("{:<10} {:>7} {:<9} {:>8} {:>8} {:>9} {:>8} {:>21} {:>8}\n", "users", "count", "metric", "A", "B", "A - B",
             "rel", "interval", "p");
  std::unique_ptr<MetricsLog> log;
  if (!output.empty()) log = std::make_unique<MetricsLog>(output);
  for (const auto& [slice, min_history, max_events] : slices) {
    const auto paired = eval::pair_by_user(rows_a, candidate, rows_b, baseline, min_history, max_events);
    if (paired.rank_a.empty()) {
      fmt::print("{:<10} {:>7} (no users)\n", slice, 0);
      continue;
    }
    for (const auto& metric : metrics) {
      std::vector<double> a, b;
      for (auto rank : paired.rank_a) a.push_back(eval::metric_of_rank(metric, rank));
      for (auto rank : paired.rank_b) b.push_back(eval::metric_of_rank(metric, rank));
      const auto result = eval::paired_test(a, b, test);
      const auto relative = result.mean_b != 0 ? fmt::format("{:+.1f}%", 100 * result.delta / result.mean_b) : "-";
      fmt::print("{:<10} {:>7} {:<9} {:>8.4f} {:>8.4f} {:>+9.4f} {:>8} {:>21} {:>8.4f}{}\n", slice, result.users,
                 metric, result.mean_a, result.mean_b, result.delta, relative,
                 fmt::format("[{:+.4f}, {:+.4f}]", result.ci_low, result.ci_high), result.p_value,
                 result.exact ? " (exact)" : "");
      if (log) {
        log->write("compare", {{"min_history", static_cast<double>(min_history)},
                               {"max_target_events", static_cast<double>(max_events)},
                               {"users", static_cast<double>(result.users)},
                               {metric + "/a", result.mean_a},
                               {metric + "/b", result.mean_b},
                               {metric + "/delta", result.delta},
                               {metric + "/standard_error", result.standard_error},
                               {metric + "/ci_low", result.ci_low},
                               {metric + "/ci_high", result.ci_high},
                               {metric + "/p", result.p_value}});
      }
    }
  }
  return 0;
}

}  // namespace longrec::cli
