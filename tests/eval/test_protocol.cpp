// Evaluation protocols (issue 18, items 4 and 7): configurable cutoffs, and
// which earlier events are excluded from ranking and what a repeated target
// does, each checked against a brute-force reference in plain C++ over a tiny
// store whose users repeat items inside and outside the model's window.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "longrec/core/error.h"
#include "longrec/data/history_store.h"
#include "longrec/data/loader.h"
#include "longrec/data/prepare.h"
#include "longrec/eval/protocol.h"
#include "longrec/eval/ranking_metrics.h"
#include "longrec/eval/retrieval.h"
#include "longrec/eval/user_ranks.h"
#include "longrec/model/item_table.h"
#include "longrec/model/sequence_batch.h"
#include "longrec/model/sequential_recommender.h"
#include "support/test_support.h"

namespace longrec::eval {

TEST(RankingMetrics, ConfiguredCutoffsGiveHrAndNdcgAtEach) {
  RankingMetrics m({3, 7});
  for (std::int64_t rank : {0, 2, 3, 6, 7, 100}) m.add(rank);
  const auto v = m.values();
  EXPECT_EQ(v.size(), 5u);  // hr@3, hr@7, ndcg@3, ndcg@7, mrr
  EXPECT_DOUBLE_EQ(v.at("hr@3"), 2.0 / 6);
  EXPECT_DOUBLE_EQ(v.at("hr@7"), 4.0 / 6);
  EXPECT_NEAR(v.at("ndcg@3"), (1.0 + 1.0 / std::log2(4.0)) / 6, 1e-15);
  EXPECT_NEAR(v.at("ndcg@7"), (1.0 + 1.0 / std::log2(4.0) + 1.0 / std::log2(5.0) + 1.0 / std::log2(8.0)) / 6, 1e-15);
  // sums(): count, hr@K..., ndcg@K..., reciprocal ranks (the all-reduce layout).
  const auto s = m.sums();
  ASSERT_EQ(s.size(), 6u);
  EXPECT_EQ(s[0], 6.0);
  EXPECT_EQ(s[1], 2.0);
  EXPECT_EQ(s[2], 4.0);
  EXPECT_EQ(RankingMetrics::from_sums(s, {3, 7}).values(), v);
  EXPECT_THROW(RankingMetrics::from_sums(s), Error);  // the default cutoffs lay out 14 sums
  RankingMetrics other;
  EXPECT_THROW(m.merge(other), Error);
  // The default reports @5, @10 and @20 besides @1, @50 and @200, and the names per-user comparisons use.
  EXPECT_EQ(default_cutoffs(), (std::vector<int>{1, 5, 10, 20, 50, 200}));
  const auto names = metric_names();
  EXPECT_EQ(names.size(), 13u);
  for (const auto& name : names) EXPECT_TRUE(RankingMetrics().values().contains(name)) << name;
}

TEST(RankingMetrics, FormatListsEveryCutoffInOrder) {
  RankingMetrics m({1, 5, 20});
  m.add(3);
  EXPECT_EQ(format_metrics(m.values()),
            "HR@1 0.0000  HR@5 1.0000  HR@20 1.0000  NDCG@1 0.0000  NDCG@5 0.4307  NDCG@20 0.4307  MRR 0.2500");
  auto with_slice = m.values();
  with_slice["hist>9/hr@5"] = 0.5;
  with_slice["hist>9/users"] = 1;
  EXPECT_EQ(format_metrics(with_slice), format_metrics(m.values()));
}

TEST(RankingProtocol, CutoffsAreCheckedAndErrorsNameTheKeyAndValue) {
  EXPECT_EQ(parse_cutoffs("5,10,20"), (std::vector<int>{5, 10, 20}));
  EXPECT_EQ(parse_cutoffs(" 1 , 1000000"), (std::vector<int>{1, 1000000}));
  for (const std::string bad :
       {"", "0", "-5", "10,5", "5,5", "5,,10", "x", "1e3", "5.0", "1000001", "5,10,", "99999999999999999999"}) {
    try {
      parse_cutoffs(bad);
      ADD_FAILURE() << "'" << bad << "' accepted";
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("eval.cutoffs"), std::string::npos) << what;
      EXPECT_NE(what.find("'" + bad + "'"), std::string::npos) << what;
    }
  }
  std::string many;
  for (int k = 1; k <= 33; ++k) many += (k > 1 ? "," : "") + std::to_string(k);
  EXPECT_THROW(parse_cutoffs(many), ConfigError);
  EXPECT_THROW(parse_history_exclusion("recent"), ConfigError);
  EXPECT_THROW(parse_repeat_target("drop"), ConfigError);
  const auto p = ProtocolOptions{}.resolve();
  EXPECT_EQ(p.cutoffs, default_cutoffs());
  EXPECT_EQ(p.exclude_history, HistoryExclusion::All);
  EXPECT_EQ(p.target_in_history, RepeatTarget::Rank);
  EXPECT_EQ(describe(p), "exclude_history all, target_in_history rank");
}

namespace {

constexpr int kWindow = 4;  // the model's input window (data.max_len = model.max_len)

// Raw histories (oldest first; the last event is the test target). Users 1-2
// repeat their target inside the window, users 3-4 only before it, user 5
// twice (before and inside), users 6-9 not at all; users 1, 3 and 6 have
// histories longer than the window.
const std::map<std::int64_t, std::vector<std::int64_t>> kHistories = {
    {1, {11, 12, 13, 14, 15, 16, 17, 15}},
    {2, {21, 22, 23, 21}},
    {3, {31, 11, 12, 13, 14, 15, 16, 31}},
    {4, {12, 13, 41, 14, 15, 16, 17, 18, 12}},
    {5, {51, 52, 51, 53, 54, 51}},
    {6, {61, 62, 63, 11, 12, 13, 14, 15, 64}},
    {7, {71, 72, 73}},
    {8, {12, 81, 14, 82, 18}},
    {9, {91, 92, 93, 94, 95, 11}},
};

struct Reference {
  std::map<std::int64_t, std::int64_t> ranks;  // user -> rank (absent: skipped)
  std::int64_t repeats = 0;
};

// The protocol in plain C++: every candidate's score a double dot product of
// float vectors, the target's rank the number of non-excluded items above it.
Reference reference_ranks(const std::map<std::int64_t, std::vector<std::int32_t>>& dense, const torch::Tensor& queries,
                          const std::vector<std::int64_t>& users, const torch::Tensor& item_vectors,
                          std::int64_t num_items, const std::vector<int>& cutoffs, HistoryExclusion exclusion,
                          RepeatTarget repeats) {
  Reference out;
  for (std::size_t u = 0; u < users.size(); ++u) {
    const auto& events = dense.at(users[u]);
    const std::int64_t target = events.back();
    const auto history_end = events.end() - 1;
    std::set<std::int64_t> excluded;
    if (exclusion == HistoryExclusion::All) excluded.insert(events.begin(), history_end);
    if (exclusion == HistoryExclusion::Window) {
      excluded.insert(history_end - std::min<std::ptrdiff_t>(kWindow, history_end - events.begin()), history_end);
    }
    const auto q = queries[static_cast<std::int64_t>(u)].contiguous();
    const auto score = [&](std::int64_t item) {
      const auto row = item_vectors[item].contiguous();
      double s = 0;
      for (std::int64_t d = 0; d < q.size(0); ++d) s += q[d].item<float>() * row[d].item<float>();
      return s;
    };
    const bool repeat = excluded.contains(target);
    out.repeats += repeat;
    if (repeat && repeats == RepeatTarget::Skip) continue;
    if (repeat && repeats == RepeatTarget::Miss) {
      out.ranks[users[u]] = std::max<std::int64_t>(num_items, cutoffs.back());
      continue;
    }
    const double target_score = score(target);
    std::int64_t rank = 0;
    for (std::int64_t i = 1; i <= num_items; ++i) {
      if (i != target && !excluded.contains(i) && score(i) > target_score) ++rank;
    }
    out.ranks[users[u]] = rank;
  }
  return out;
}

}  // namespace

// Every exclusion policy x every repeat policy: the evaluator's per-user ranks
// equal the brute-force reference's, so do the metrics, and the counts of
// repeats and skipped users are the ones the histories hold.
TEST(RankingProtocol, EveryPolicyEqualsBruteForceOnATinyStore) {
  testing::ScratchDir dir;
  std::string text;
  for (const auto& [user, items] : kHistories) {
    text += std::to_string(user);
    for (const auto item : items) text += " " + std::to_string(item);
    text += "\n";
  }
  data::PrepareOptions prepare;
  prepare.input = testing::write_file(dir / "seq.txt", text);
  prepare.output = dir / "store";
  prepare.read.format = "seq";
  prepare.num_parts = 2;
  data::prepare_dataset(prepare);
  const data::HistoryStoreReader store(prepare.output);
  std::map<std::int64_t, std::int32_t> dense_of;
  const auto raw_ids = store.item_raw_ids();
  for (std::size_t i = 0; i < raw_ids.size(); ++i) dense_of[raw_ids[i]] = static_cast<std::int32_t>(i + 1);
  std::map<std::int64_t, std::vector<std::int32_t>> dense;
  for (const auto& [user, items] : kHistories) {
    for (const auto item : items) dense[user].push_back(dense_of.at(item));
  }
  const auto num_items = static_cast<std::int64_t>(raw_ids.size());

  torch::manual_seed(3);
  model::ModelConfig model_config;
  model_config.dim = 8;
  model_config.max_len = kWindow;
  model::SequentialRecommender model(model_config);
  model.eval();
  model::LocalItemTable items(num_items, 8, {}, 5);
  // Each user's query from its own one-row batch (the serving path), not the loader's.
  std::vector<std::int64_t> users;
  std::vector<torch::Tensor> rows;
  for (const auto& [user, events] : dense) {
    const std::vector<std::int64_t> history(events.begin(), events.end() - 1);
    std::vector<std::int64_t> times(history.size());
    for (std::size_t t = 0; t < times.size(); ++t) times[t] = static_cast<std::int64_t>(t);
    const auto batch = model::history_batch({history}, {times}, {static_cast<std::int64_t>(history.size())}, kWindow);
    users.push_back(user);
    rows.push_back(model::last_position_vectors(model, items, batch));
  }
  const auto queries = torch::cat(rows);
  const auto item_vectors = items.normalized_rows(0, num_items + 1);

  data::LoaderConfig loader_config;
  loader_config.max_len = kWindow;
  loader_config.batch_size = 4;  // several batches, windows of different widths
  data::HistoryLoader loader(prepare.output, loader_config, data::SplitPart::Test);
  for (const auto exclusion : {HistoryExclusion::All, HistoryExclusion::Window, HistoryExclusion::None}) {
    for (const auto repeats : {RepeatTarget::Rank, RepeatTarget::Miss, RepeatTarget::Skip}) {
      SCOPED_TRACE(describe({default_cutoffs(), exclusion, repeats}));
      EvaluateOptions options;
      options.keep_user_ranks = true;
      // A cutoff past the catalogue (every ranked target is a hit there; a miss is not).
      const std::vector<int> cutoffs{1, 2, 5, 1000};
      options.protocol = {cutoffs, exclusion, repeats};
      options.progress_label.clear();
      const auto result = evaluate(model, items, loader, torch::kCPU, options);
      const auto expected =
          reference_ranks(dense, queries, users, item_vectors, num_items, cutoffs, exclusion, repeats);
      std::map<std::int64_t, std::int64_t> got;
      for (const auto& row : result.user_ranks) got[row.user] = row.rank;
      EXPECT_EQ(got, expected.ranks);
      // Repeats: inside the window (users 1, 2, 5) for window; also before it (3, 4) for all.
      const std::int64_t repeat_users = exclusion == HistoryExclusion::All      ? 5
                                        : exclusion == HistoryExclusion::Window ? 3
                                                                                : 0;
      EXPECT_EQ(result.repeat_targets, repeat_users);
      EXPECT_EQ(expected.repeats, repeat_users);
      EXPECT_EQ(result.skipped_users, repeats == RepeatTarget::Skip ? repeat_users : 0);
      EXPECT_EQ(result.all.count(), 9 - result.skipped_users);
      RankingMetrics reference(cutoffs);
      for (const auto& row : result.user_ranks) reference.add(expected.ranks.at(row.user));
      EXPECT_EQ(result.all.values(), reference.values());
      const double scored = static_cast<double>(result.all.count());
      EXPECT_EQ(result.all.values().at("hr@1000"),
                (scored - (repeats == RepeatTarget::Miss ? repeat_users : 0)) / scored);
    }
  }
}

}  // namespace longrec::eval
