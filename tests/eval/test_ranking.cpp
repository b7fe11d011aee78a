#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "longrec/eval/ranking_metrics.h"
#include "longrec/eval/retrieval.h"
#include "longrec/data/loader.h"
#include "longrec/data/prepare.h"
#include "longrec/model/item_table.h"
#include "longrec/model/sequential_recommender.h"
#include "support/test_support.h"

namespace longrec::eval {

TEST(RankingMetrics, HandComputedValues) {
  RankingMetrics m;
  for (std::int64_t rank : {0, 3, 12, 60, 500}) m.add(rank);
  const auto v = m.values();
  EXPECT_DOUBLE_EQ(v.at("hr@1"), 1.0 / 5);
  EXPECT_DOUBLE_EQ(v.at("hr@10"), 2.0 / 5);
  EXPECT_DOUBLE_EQ(v.at("hr@50"), 3.0 / 5);
  EXPECT_DOUBLE_EQ(v.at("hr@200"), 4.0 / 5);
  EXPECT_NEAR(v.at("ndcg@10"), (1.0 + 1.0 / std::log2(5.0)) / 5, 1e-12);
  EXPECT_NEAR(v.at("mrr"), (1.0 + 1.0 / 4 + 1.0 / 13 + 1.0 / 61 + 1.0 / 501) / 5, 1e-12);
  const auto back = RankingMetrics::from_sums(m.sums());
  EXPECT_EQ(back.values(), v);
}

TEST(Retrieval, ChunkedRanksEqualBruteForceWithHistoryExcluded) {
  torch::manual_seed(4);
  const std::int64_t I = 1000, D = 16, B = 12;
  model::LocalItemTable items(I, D, {}, 9);
  auto queries = torch::randn({B, D});
  queries = queries / queries.norm(2, 1, true);
  auto targets = torch::randint(1, I + 1, {B}, torch::kInt64);
  std::vector<std::int64_t> offsets{0};
  std::vector<std::int32_t> seen;
  for (std::int64_t r = 0; r < B; ++r) {
    for (int k = 0; k < 30; ++k) seen.push_back(static_cast<std::int32_t>((r * 37 + k * 11) % I + 1));
    seen.push_back(static_cast<std::int32_t>(targets[r].item<std::int64_t>()));  // a repeat of the target itself
    offsets.push_back(static_cast<std::int64_t>(seen.size()));
  }
  // Small chunks so that several are needed.
  const auto ranks = target_ranks(queries, targets, offsets, seen, items, /*comm=*/nullptr, /*item_chunk=*/97);
  auto all = items.normalized_rows(0, I + 1);
  for (std::int64_t r = 0; r < B; ++r) {
    const auto target = targets[r].item<std::int64_t>();
    std::set<std::int64_t> history(seen.begin() + offsets[r], seen.begin() + offsets[r + 1]);
    const double score = (queries[r] * all[target]).sum().item<double>();
    std::int64_t expected = 0;
    for (std::int64_t i = 1; i <= I; ++i) {
      if (i == target || history.contains(i)) continue;
      expected += (queries[r] * all[i]).sum().item<double>() > score;
    }
    EXPECT_EQ(ranks[static_cast<std::size_t>(r)], expected) << "row " << r;
  }
}

}  // namespace longrec::eval

namespace longrec::eval {

// The long-history slice counts exactly the users whose whole history before
// the held-out event is longer than the threshold: 366 of ML-1M's 6,040 have
// more than 512 (from the raw file: 366 lines with more than 513 items).
TEST(Retrieval, LongHistorySliceCountsTheRightUsersOnMl1m) {
  const auto input = testing::shared_data() / "ml-1m" / "sequences_orig_ids.txt";
  if (!std::filesystem::exists(input)) GTEST_SKIP() << input << " not present";
  testing::ScratchDir dir;
  data::PrepareOptions prepare;
  prepare.input = input;
  prepare.output = dir / "store";
  data::prepare_dataset(prepare);
  data::LoaderConfig config;
  config.max_len = 8;  // the slice reads whole histories, not the model's window
  config.batch_size = 512;
  data::HistoryLoader loader(prepare.output, config, data::SplitPart::Test);
  model::ModelConfig model_config;
  model_config.dim = 8;
  model_config.max_len = 8;
  model::SequentialRecommender model(model_config);
  model::LocalItemTable items(loader.num_items(), 8, {}, 1);
  const auto result = evaluate(model, items, loader, torch::kCPU, 512, /*comm=*/nullptr, /*keep_user_ranks=*/true);
  EXPECT_EQ(result.all.count(), 6040);
  EXPECT_EQ(result.long_histories.count(), 366);
  const auto values = result.values();
  EXPECT_EQ(values.at("hist>512/users"), 366);
  EXPECT_TRUE(values.contains("hist>512/ndcg@10"));

  // Per-user ranks: one row per user, whose means are the metrics above.
  ASSERT_EQ(result.user_ranks.size(), 6040u);
  std::set<std::int64_t> users;
  RankingMetrics all, slice;
  for (const auto& row : result.user_ranks) {
    users.insert(row.user);
    all.add(row.rank);
    if (row.history_events > 512) slice.add(row.rank);
  }
  EXPECT_EQ(users.size(), 6040u);
  EXPECT_EQ(slice.count(), 366);
  for (const auto& name : metric_names()) {
    double sum = 0;
    for (const auto& row : result.user_ranks) sum += metric_of_rank(name, row.rank);
    EXPECT_NEAR(sum / 6040, values.at(name), 1e-12) << name;
    EXPECT_NEAR(slice.values().at(name), values.at("hist>512/" + name), 1e-12) << name;
  }
  // The first line of the raw file: "user item item ...": all but the held-out item are history.
  std::ifstream raw(input);
  std::string line;
  std::getline(raw, line);
  std::istringstream fields(line);
  std::int64_t user = 0, item = 0, events = 0;
  fields >> user;
  while (fields >> item) ++events;
  const auto row = std::find_if(result.user_ranks.begin(), result.user_ranks.end(),
                                [&](const UserRank& r) { return r.user == user; });
  ASSERT_NE(row, result.user_ranks.end());
  EXPECT_EQ(row->history_events, events - 1);
}

}  // namespace longrec::eval
