// bench serve's measurements: nearest-rank percentiles, and one row per
// (length, threads, mode) in which every timed request was answered.
#include <gtest/gtest.h>

#include "longrec/core/error.h"
#include "longrec/ckpt/bundle.h"
#include "longrec/serve/recommender.h"
#include "longrec/bench/serve_benchmark.h"
#include "support/trained_fixture.h"

namespace longrec::bench {

using testing::trained;

TEST(ServeBenchmark, PercentileIsTheNearestRank) {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);
  EXPECT_EQ(percentile(v, 0.50), 50);
  EXPECT_EQ(percentile(v, 0.99), 99);
  EXPECT_EQ(percentile(v, 1.0), 100);
  EXPECT_EQ(percentile(v, 0.0), 1);
  EXPECT_EQ(percentile({7.0}, 0.99), 7);
  EXPECT_EQ(percentile({}, 0.5), 0);
}

TEST(ServeBenchmark, MeasuresRecomputeAndStateForEveryCell) {
  auto& t = trained();
  const auto path = t.dir / "bench.h5";
  ckpt::ExportOptions e;
  e.checkpoint = t.run.string();
  e.out = path.string();
  ckpt::export_bundle(e);
  const auto recommender = serve::Recommender::load(path, 1);
  ServeBenchmarkOptions options;
  options.histories = {10, 40};
  options.threads = {1, 2};
  options.seconds = 0.02;
  options.min_requests = 3;
  const auto rows = benchmark_serving(*recommender, options);
  ASSERT_EQ(rows.size(), 8u);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    SCOPED_TRACE(i);
    EXPECT_EQ(row.mode, i % 2 == 0 ? "recompute" : "state");
    EXPECT_EQ(row.history, i < 4 ? 10 : 40);
    EXPECT_EQ(row.threads, (i / 2) % 2 == 0 ? 1 : 2);
    EXPECT_GE(row.requests, 3 * row.threads);
    EXPECT_GT(row.requests_per_s, 0);
    EXPECT_LE(row.p50_ms, row.p99_ms);
    EXPECT_EQ(row.state_bytes > 0, row.mode == "state");
    EXPECT_GE(row.final_events, static_cast<double>(row.history) - 1);  // every user started one event short
  }
  EXPECT_EQ(recommender->max_history(), 44);  // max_len 48: 44 events and 4 tokens
  options.histories = {45};
  EXPECT_THROW(benchmark_serving(*recommender, options), ConfigError);
}

}  // namespace longrec::bench
