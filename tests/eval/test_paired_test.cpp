#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include "longrec/core/error.h"
#include "longrec/eval/paired_test.h"
#include "longrec/eval/ranking_metrics.h"
#include "longrec/eval/user_ranks.h"
#include "support/test_support.h"

namespace longrec::eval {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// Two-sided sign-flip p-value by brute force: every sign pattern, recursively.
double brute_force_p(const std::vector<double>& d) {
  double observed = 0;
  for (double x : d) observed += x;
  std::int64_t extreme = 0, total = 0;
  std::function<void(std::size_t, double)> walk = [&](std::size_t i, double sum) {
    if (i == d.size()) {
      ++total;
      extreme += std::abs(sum) >= std::abs(observed) - 1e-9;
      return;
    }
    walk(i + 1, sum + d[i]);
    walk(i + 1, sum - d[i]);
  };
  walk(0, 0);
  return static_cast<double>(extreme) / static_cast<double>(total);
}

}  // namespace

TEST(MetricOfRank, MeansAreTheRankingMetrics) {
  std::mt19937_64 gen(3);
  std::uniform_int_distribution<std::int64_t> rank(0, 400);
  RankingMetrics metrics;
  std::vector<std::int64_t> ranks;
  for (int i = 0; i < 500; ++i) {
    ranks.push_back(rank(gen));
    metrics.add(ranks.back());
  }
  const auto values = metrics.values();
  ASSERT_EQ(metric_names().size(), values.size());
  for (const auto& name : metric_names()) {
    double sum = 0;
    for (auto r : ranks) sum += metric_of_rank(name, r);
    EXPECT_NEAR(sum / 500, values.at(name), 1e-12) << name;
  }
  // Any cutoff, not only the reported ones.
  EXPECT_EQ(metric_of_rank("hr@5", 4), 1.0);
  EXPECT_EQ(metric_of_rank("hr@5", 5), 0.0);
  EXPECT_DOUBLE_EQ(metric_of_rank("ndcg@3", 2), 0.5);
}

TEST(MetricOfRank, UnknownNamesAreRefusedWithTheKey) {
  for (const std::string bad : {"ndcg10", "hr@0", "hr@x", "recall@10", "ndcg@10x", ""}) {
    const auto message = error_of([&] { metric_of_rank(bad, 0, "compare.metrics"); });
    EXPECT_NE(message.find("compare.metrics"), std::string::npos) << message;
    EXPECT_NE(message.find("unknown metric '" + bad + "'"), std::string::npos) << message;
  }
}

TEST(UserRanks, RoundTripAndNothingHalfWritten) {
  testing::ScratchDir dir;
  const std::vector<UserRank> rows{{17, 600, 0, 5, 2}, {3, 12, 4000, 9, 31}, {-1, 0, 7}};
  write_user_ranks(dir / "r.tsv", rows);
  EXPECT_EQ(read_user_ranks(dir / "r.tsv"), rows);
  // Files of three columns, written before targets were recorded, are read with none.
  testing::write_file(dir / "old.tsv", "user\thistory_events\trank\n4\t10\t2\n");
  EXPECT_EQ(read_user_ranks(dir / "old.tsv"), (std::vector<UserRank>{{4, 10, 2, -1, -1}}));
  std::filesystem::remove(dir / "old.tsv");
  std::int64_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1);  // no temporary left
  EXPECT_THROW(write_user_ranks(dir / "missing-dir" / "r.tsv", rows), Error);
  EXPECT_FALSE(std::filesystem::exists(dir / "missing-dir"));
}

TEST(UserRanks, BadFilesNameTheFileAndLine) {
  testing::ScratchDir dir;
  const auto path = (dir / "r.tsv").string();
  const auto read_error = [&](const std::string& text) {
    testing::write_file(path, text);
    return error_of([&] { read_user_ranks(path); });
  };
  EXPECT_NE(read_error("user,history,rank\n1,2,3\n").find(path + ":1: expected the header"), std::string::npos);
  EXPECT_NE(read_error("user\thistory_events\trank\n1\t2\t3\n4\t5\n").find(path + ":3: expected"), std::string::npos);
  EXPECT_NE(read_error("user\thistory_events\trank\n1\t2\tx\n").find(path + ":2:"), std::string::npos);
  EXPECT_NE(read_error("user\thistory_events\trank\n1\t2\t-3\n").find(path + ":2:"), std::string::npos);
  EXPECT_NE(read_error("user\thistory_events\trank\n1\t2\t3 \n").find(path + ":2:"), std::string::npos);
  EXPECT_NE(read_error("user\thistory_events\trank\n1\t2\t3\n1\t2\t5\n").find(path + ":3: user 1 listed twice"),
            std::string::npos);
  EXPECT_NE(error_of([&] { read_user_ranks(dir / "none.tsv"); }).find("none.tsv: cannot open"), std::string::npos);
  const std::string header = "user\thistory_events\trank\ttarget\ttarget_events\n";
  EXPECT_NE(read_error(header + "1\t2\t3\t4\n").find(path + ":2: expected 'user<TAB>history_events<TAB>rank<TAB>"
                                                           "target<TAB>target_events'"),
            std::string::npos);
  EXPECT_NE(read_error(header + "1\t2\t3\t4\t-2\n").find(path + ":2:"), std::string::npos);
}

TEST(PairedTest, IdenticalModelsShowNoDifference) {
  const std::vector<double> a{0.1, 0.5, 0.0, 1.0, 0.3};
  const auto r = paired_test(a, a, {.resamples = 2000});
  EXPECT_EQ(r.users, 5);
  EXPECT_DOUBLE_EQ(r.delta, 0.0);
  EXPECT_EQ(r.ci_low, 0.0);
  EXPECT_EQ(r.ci_high, 0.0);
  EXPECT_EQ(r.p_value, 1.0);
  EXPECT_TRUE(r.exact);
}

TEST(PairedTest, ExactPValueMatchesEnumerationByHand) {
  // Five equal differences: only all-plus and all-minus are as extreme: 2 / 32.
  const auto same = paired_test({1, 1, 1, 1, 1}, {0, 0, 0, 0, 0}, {.resamples = 100});
  EXPECT_TRUE(same.exact);
  EXPECT_DOUBLE_EQ(same.p_value, 2.0 / 32);
  EXPECT_DOUBLE_EQ(same.delta, 1.0);
  EXPECT_DOUBLE_EQ(same.standard_error, 0.0);
  // Random differences (with zeros and ties), against a recursive enumeration.
  std::mt19937_64 gen(11);
  std::uniform_int_distribution<int> value(-3, 3);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> a(10), b(10, 0.0), d(10);
    for (std::size_t i = 0; i < 10; ++i) d[i] = a[i] = 0.25 * value(gen);
    const auto r = paired_test(a, b, {.resamples = 1024, .seed = static_cast<std::uint64_t>(trial)});
    ASSERT_TRUE(r.exact);
    EXPECT_DOUBLE_EQ(r.p_value, brute_force_p(d)) << "trial " << trial;
  }
}

TEST(PairedTest, MonteCarloAgreesWithExact) {
  std::mt19937_64 gen(5);
  std::normal_distribution<double> noise(0.05, 0.2);
  std::vector<double> a(16), b(16, 0.0);
  for (auto& x : a) x = noise(gen);
  const auto exact = paired_test(a, b, {.resamples = 1 << 16});
  const auto sampled = paired_test(a, b, {.resamples = 20000});
  ASSERT_TRUE(exact.exact);
  ASSERT_FALSE(sampled.exact);
  EXPECT_NEAR(sampled.p_value, exact.p_value, 0.015);  // 4 standard errors of 20,000 draws
}

TEST(PairedTest, IntervalMatchesTheNormalApproximationAndDetectsAClearEffect) {
  std::mt19937_64 gen(7);
  std::normal_distribution<double> noise(0.0, 1.0);
  std::vector<double> a(3000), b(3000);
  for (std::size_t i = 0; i < a.size(); ++i) {
    b[i] = noise(gen);
    a[i] = b[i] + 0.1 + 0.5 * noise(gen);  // a true gain of 0.1, sd of differences 0.5
  }
  const auto r = paired_test(a, b, {.resamples = 4000, .seed = 1});
  EXPECT_NEAR(r.standard_error, 0.5 / std::sqrt(3000.0), 0.1 * 0.5 / std::sqrt(3000.0));
  EXPECT_NEAR(r.ci_high - r.ci_low, 2 * 1.96 * r.standard_error, 0.1 * 2 * 1.96 * r.standard_error);
  EXPECT_LT(r.ci_low, r.delta);
  EXPECT_GT(r.ci_high, r.delta);
  EXPECT_GT(r.ci_low, 0.0);
  EXPECT_NEAR(r.delta, 0.1, 4 * r.standard_error);
  EXPECT_DOUBLE_EQ(r.p_value, 1.0 / 4001);  // no sign pattern of 4,000 comes close
  // Deterministic for a seed.
  const auto again = paired_test(a, b, {.resamples = 4000, .seed = 1});
  EXPECT_EQ(again.ci_low, r.ci_low);
  EXPECT_EQ(again.p_value, r.p_value);
  // No effect: the interval covers zero and p is not small.
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = b[i] + 0.5 * noise(gen);
  const auto none = paired_test(a, b, {.resamples = 4000, .seed = 1});
  EXPECT_GT(none.p_value, 0.01);
  EXPECT_LT(none.ci_low, 0.0 + 4 * none.standard_error);
}

TEST(PairByUser, MatchesUsersInAnyOrderAndSlicesByHistory) {
  const std::vector<UserRank> a{{1, 100, 5}, {2, 900, 0}, {3, 600, 20}};
  const std::vector<UserRank> b{{3, 600, 2}, {1, 100, 9}, {2, 900, 1}};
  const auto all = pair_by_user(a, "a.tsv", b, "b.tsv");
  EXPECT_EQ(all.rank_a, (std::vector<std::int64_t>{5, 0, 20}));  // by user id
  EXPECT_EQ(all.rank_b, (std::vector<std::int64_t>{9, 1, 2}));
  const auto long_only = pair_by_user(a, "a.tsv", b, "b.tsv", 512);
  EXPECT_EQ(long_only.rank_a, (std::vector<std::int64_t>{0, 20}));
  EXPECT_EQ(long_only.rank_b, (std::vector<std::int64_t>{1, 2}));
}

TEST(PairByUser, SlicesUsersWhoseTargetIsRare) {
  const std::vector<UserRank> a{{1, 100, 5, 7, 3}, {2, 900, 0, 8, 250}, {3, 600, 20, 9, 5}};
  const std::vector<UserRank> b{{3, 600, 2, 9, 5}, {1, 100, 9, 7, 3}, {2, 900, 1, 8, 250}};
  const auto cold = pair_by_user(a, "a.tsv", b, "b.tsv", 0, 5);
  EXPECT_EQ(cold.rank_a, (std::vector<std::int64_t>{5, 20}));
  EXPECT_EQ(cold.rank_b, (std::vector<std::int64_t>{9, 2}));
  EXPECT_EQ(pair_by_user(a, "a.tsv", b, "b.tsv", 0, 2).rank_a.size(), 0u);
  // Targets that differ: not the same split; none recorded: evaluate again.
  auto other = b;
  other[0].target = 10;
  EXPECT_NE(error_of([&] { pair_by_user(a, "a.tsv", other, "b.tsv", 0, 5); })
                .find("user 3 has target 9 in a.tsv but 10 in b.tsv"),
            std::string::npos);
  const std::vector<UserRank> old{{1, 100, 5}, {2, 900, 0}, {3, 600, 20}};
  EXPECT_NE(error_of([&] { pair_by_user(old, "old.tsv", b, "b.tsv", 0, 5); }).find("old.tsv has no targets recorded"),
            std::string::npos);
  EXPECT_EQ(pair_by_user(old, "old.tsv", b, "b.tsv").rank_a.size(), 3u);  // without the slice, fine
}

TEST(PairByUser, DifferentUsersOrHistoriesAreRefused) {
  const std::vector<UserRank> a{{1, 100, 5}, {2, 900, 0}};
  const auto missing = error_of([&] { pair_by_user(a, "a.tsv", {{1, 100, 5}, {4, 9, 0}}, "b.tsv"); });
  EXPECT_NE(missing.find("a.tsv and b.tsv rank different users (1 only in the first, 1 only in the second; user 2 "
                         "is only in a.tsv)"),
            std::string::npos)
      << missing;
  const auto longer = error_of([&] { pair_by_user(a, "a.tsv", {{1, 100, 5}, {2, 901, 0}}, "b.tsv"); });
  EXPECT_NE(longer.find("user 2 has 900 events in a.tsv but 901 in b.tsv"), std::string::npos) << longer;
}

}  // namespace longrec::eval
