#include <gtest/gtest.h>

#include <map>
#include <set>

#include "longrec/core/error.h"
#include "longrec/data/history_store.h"
#include "longrec/data/loader.h"
#include "support/test_support.h"

namespace longrec::data {

namespace {

constexpr int kItems = 30;

// 60 users; user u has (u * 7) % 23 + 1 events; item of event t is (u + t) % 30 + 1; time = 100 u + t.
std::filesystem::path make_store(const std::filesystem::path& target, std::int32_t bad_item = 0) {
  HistoryStoreWriter writer(target, {3, false, false});
  for (std::int64_t u = 1; u <= 60; ++u) {
    std::vector<std::int32_t> items;
    std::vector<std::int64_t> times;
    for (std::int64_t t = 0; t < (u * 7) % 23 + 1; ++t) {
      items.push_back(static_cast<std::int32_t>((u + t) % kItems + 1));
      times.push_back(100 * u + t);
    }
    if (bad_item != 0 && u == 5) items[0] = bad_item;
    writer.add_user(u, items, times);
  }
  std::vector<std::int64_t> raw(kItems), counts(kItems, 0);
  for (int i = 0; i < kItems; ++i) raw[i] = i + 1;
  writer.set_items(raw, counts);
  StoreMeta description;
  description.item_order = "first";
  writer.commit(description);
  return target;
}

LoaderConfig small_config() {
  LoaderConfig c;
  c.batch_size = 4;
  c.max_len = 5;
  c.read_users = 3;
  c.shuffle_users = 6;
  c.prefetch_batches = 2;
  return c;
}

std::vector<Batch> epoch(HistoryLoader& loader) {
  std::vector<Batch> batches;
  while (auto b = loader.next()) batches.push_back(std::move(*b));
  return batches;
}

// One row of a batch as comparable values.
using Row = std::tuple<std::int64_t, std::vector<std::int32_t>, std::vector<std::int32_t>>;
std::vector<Row> rows_of(const Batch& b) {
  std::vector<Row> rows;
  for (int r = 0; r < b.rows; ++r) {
    const auto begin = b.items.begin() + r * b.width;
    std::vector<std::int32_t> items(begin, begin + b.lengths[r]);
    std::vector<std::int32_t> targets;
    if (b.training) {
      targets.assign(b.targets.begin() + r * b.width, b.targets.begin() + r * b.width + b.lengths[r]);
    } else {
      targets.push_back(b.targets[r]);
    }
    rows.emplace_back(b.user_ids[r], items, targets);
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

}  // namespace

TEST(Loader, SameSeedSameBatchesOtherSeedOtherOrder) {
  testing::ScratchDir dir;
  const auto store = make_store(dir / "s");
  HistoryLoader a(store, small_config(), SplitPart::Train), b(store, small_config(), SplitPart::Train);
  auto other = small_config();
  other.seed = 43;
  HistoryLoader c(store, other, SplitPart::Train);
  const auto ea = epoch(a), eb = epoch(b), ec = epoch(c);
  ASSERT_EQ(ea.size(), eb.size());
  ASSERT_EQ(static_cast<std::int64_t>(ea.size()), a.batches_per_epoch());
  bool differs = false;
  for (std::size_t i = 0; i < ea.size(); ++i) {
    EXPECT_EQ(ea[i].items, eb[i].items);
    EXPECT_EQ(ea[i].targets, eb[i].targets);
    EXPECT_EQ(ea[i].user_ids, eb[i].user_ids);
    differs |= ea[i].user_ids != ec[i].user_ids;
  }
  EXPECT_TRUE(differs);
  // The next epoch is shuffled differently.
  const auto ea2 = epoch(a);
  ASSERT_EQ(ea2.size(), ea.size());
  bool epoch_differs = false;
  for (std::size_t i = 0; i < ea.size(); ++i) epoch_differs |= ea[i].user_ids != ea2[i].user_ids;
  EXPECT_TRUE(epoch_differs);
}

TEST(Loader, EveryUserWithTrainingDataOnceAndBatchesFull) {
  testing::ScratchDir dir;
  const auto store = make_store(dir / "s");
  HistoryLoader loader(store, small_config(), SplitPart::Train);
  std::multiset<std::int64_t> users;
  const auto batches = epoch(loader);
  for (std::size_t i = 0; i < batches.size(); ++i) {
    const auto& b = batches[i];
    if (i + 1 < batches.size()) {
      EXPECT_EQ(b.rows, 4);
    }
    for (int r = 0; r < b.rows; ++r) {
      users.insert(b.user_ids[r]);
      EXPECT_LE(b.lengths[r], 5);
      for (int t = b.lengths[r]; t < b.width; ++t) EXPECT_EQ(b.items[r * b.width + t], 0);  // padding
    }
  }
  // Users with >= 3 events have a loo training sample (>= 2 training events).
  std::multiset<std::int64_t> expected;
  for (std::int64_t u = 1; u <= 60; ++u) {
    if ((u * 7) % 23 + 1 >= 3) expected.insert(u);
  }
  EXPECT_EQ(users, expected);
  EXPECT_EQ(loader.samples_per_epoch(), static_cast<std::int64_t>(expected.size()));
}

TEST(Loader, TwoRanksSeeDisjointUsersWhoseUnionIsTheOneRankBatch) {
  testing::ScratchDir dir;
  const auto store = make_store(dir / "s");
  HistoryLoader single(store, small_config(), SplitPart::Train);
  HistoryLoader rank0(store, small_config(), SplitPart::Train, 0, 2),
      rank1(store, small_config(), SplitPart::Train, 1, 2);
  EXPECT_EQ(rank0.rank_users() + rank1.rank_users(), 60);
  const auto s = epoch(single), r0 = epoch(rank0), r1 = epoch(rank1);
  ASSERT_EQ(s.size(), r0.size());
  ASSERT_EQ(s.size(), r1.size());
  std::set<std::int64_t> users0, users1;
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto merged = rows_of(r0[i]);
    const auto rows1 = rows_of(r1[i]);
    merged.insert(merged.end(), rows1.begin(), rows1.end());
    std::sort(merged.begin(), merged.end());
    EXPECT_EQ(merged, rows_of(s[i])) << "global batch " << i;
    EXPECT_EQ(r0[i].global_rows, s[i].rows);
    users0.insert(r0[i].user_ids.begin(), r0[i].user_ids.end());
    users1.insert(r1[i].user_ids.begin(), r1[i].user_ids.end());
  }
  for (auto u : users0) EXPECT_FALSE(users1.contains(u)) << "user " << u << " on both ranks";
  EXPECT_FALSE(users0.empty());
  EXPECT_FALSE(users1.empty());
}

TEST(Loader, RestoreContinuesExactlyMidEpochAndAcrossEpochs) {
  testing::ScratchDir dir;
  const auto store = make_store(dir / "s");
  HistoryLoader reference(store, small_config(), SplitPart::Train);
  std::vector<Batch> all = epoch(reference);
  const auto second = epoch(reference);
  all.insert(all.end(), second.begin(), second.end());
  const std::size_t per_epoch = second.size();

  for (std::size_t stop : {std::size_t{1}, std::size_t{5}, per_epoch, per_epoch + 2}) {
    HistoryLoader first(store, small_config(), SplitPart::Train);
    std::size_t consumed = 0;
    while (consumed < stop) {
      if (first.next()) ++consumed;
    }
    LoaderPosition saved = first.position();
    HistoryLoader resumed(store, small_config(), SplitPart::Train);
    resumed.restore(saved);
    for (std::size_t i = stop; i < all.size(); ++i) {
      auto b = resumed.next();
      if (!b) b = resumed.next();  // epoch boundary
      ASSERT_TRUE(b.has_value());
      EXPECT_EQ(b->items, all[i].items) << "stop " << stop << " batch " << i;
      EXPECT_EQ(b->user_ids, all[i].user_ids);
    }
  }
}

TEST(Loader, TrainingWindowsFollowTheSplitAndMaxLen) {
  testing::ScratchDir dir;
  HistoryStoreWriter writer(dir / "s", {1, false, false});
  const std::vector<std::int32_t> items{1, 2, 3, 4, 5, 6, 7, 8};
  const std::vector<std::int64_t> times{10, 11, 12, 13, 14, 15, 16, 17};
  writer.add_user(9, items, times);
  writer.set_items({1, 2, 3, 4, 5, 6, 7, 8}, std::vector<std::int64_t>(8, 1));
  writer.commit({});

  LoaderConfig c;
  c.max_len = 3;
  // loo: training events [0, 7): the newest window is events 3..6.
  HistoryLoader loo((dir / "s"), c, SplitPart::Train);
  auto b = loo.next();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->items, (std::vector<std::int32_t>{4, 5, 6}));
  EXPECT_EQ(b->targets, (std::vector<std::int32_t>{5, 6, 7}));
  EXPECT_EQ(b->times, (std::vector<std::int64_t>{13, 14, 15}));
  EXPECT_EQ(b->target_times, (std::vector<std::int64_t>{14, 15, 16}));

  // last2 + windows=all: training events [0, 6) tiled from the end, each target once.
  c.split = "last2";
  c.windows = "all";
  HistoryLoader tiled((dir / "s"), c, SplitPart::Train);
  std::multiset<std::int32_t> targets;
  while (auto batch = tiled.next()) {
    for (int r = 0; r < batch->rows; ++r) {
      for (int t = 0; t < batch->lengths[r]; ++t) targets.insert(batch->targets[r * batch->width + t]);
    }
  }
  EXPECT_EQ(targets, (std::multiset<std::int32_t>{2, 3, 4, 5, 6}));
}

TEST(Loader, EvaluationTargetsInputsAndSeenItems) {
  testing::ScratchDir dir;
  HistoryStoreWriter writer(dir / "s", {1, false, false});
  const std::vector<std::int32_t> items{1, 2, 3, 4, 5};
  const std::vector<std::int64_t> times{10, 11, 12, 13, 14};
  writer.add_user(9, items, times);
  writer.set_items({1, 2, 3, 4, 5}, std::vector<std::int64_t>(5, 1));
  writer.commit({});

  LoaderConfig c;
  c.max_len = 2;
  HistoryLoader test_loo(dir / "s", c, SplitPart::Test);
  auto b = test_loo.next();
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->training);
  EXPECT_EQ(b->items, (std::vector<std::int32_t>{3, 4}));  // truncated to max_len
  EXPECT_EQ(b->targets, (std::vector<std::int32_t>{5}));
  EXPECT_EQ(b->target_times, (std::vector<std::int64_t>{14}));
  EXPECT_EQ(b->seen_items, (std::vector<std::int32_t>{1, 2, 3, 4}));  // the whole history before the target
  EXPECT_EQ(b->seen_offsets, (std::vector<std::int64_t>{0, 4}));

  c.split = "last2";
  c.max_len = 10;
  HistoryLoader valid(dir / "s", c, SplitPart::Valid);
  b = valid.next();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->items, (std::vector<std::int32_t>{1, 2, 3}));
  EXPECT_EQ(b->targets, (std::vector<std::int32_t>{4}));
}

TEST(Loader, EvaluationBatchesUsersOfSimilarLengthAndCoversEveryUserOnceOnAnyWorld) {
  testing::ScratchDir dir;
  const auto store = make_store(dir / "s");
  auto c = small_config();
  c.max_len = 30;
  c.shuffle_users = 120;  // one buffer (chunks are per part: 21 of them): every user sorted by length
  HistoryLoader one(store, c, SplitPart::Test);
  std::multiset<std::int64_t> users;
  int previous_width = 0;
  for (const auto& b : epoch(one)) {
    for (int r = 0; r < b.rows; ++r) users.insert(b.user_ids[r]);
    EXPECT_GE(b.width, previous_width);  // ascending: short users share batches
    previous_width = b.width;
  }
  // Users with one event have no test target; everyone else once.
  std::multiset<std::int64_t> expected;
  for (std::int64_t u = 1; u <= 60; ++u) {
    if ((u * 7) % 23 + 1 >= 2) expected.insert(u);
  }
  EXPECT_EQ(users, expected);

  // Two ranks: each batch's rows split between them, the union the same.
  HistoryLoader r0(store, c, SplitPart::Test, 0, 2), r1(store, c, SplitPart::Test, 1, 2);
  HistoryLoader again(store, c, SplitPart::Test);
  const auto whole = epoch(again), a = epoch(r0), b = epoch(r1);
  ASSERT_EQ(a.size(), whole.size());
  ASSERT_EQ(b.size(), whole.size());
  for (std::size_t k = 0; k < whole.size(); ++k) {
    std::multiset<std::int64_t> split, together(whole[k].user_ids.begin(), whole[k].user_ids.end());
    split.insert(a[k].user_ids.begin(), a[k].user_ids.end());
    split.insert(b[k].user_ids.begin(), b[k].user_ids.end());
    EXPECT_EQ(split, together) << "batch " << k;
  }
}

TEST(Loader, CorruptDataInTheBackgroundReaderReachesTheConsumer) {
  testing::ScratchDir dir;
  const auto store = make_store(dir / "s", /*bad_item=*/kItems + 5);
  HistoryLoader loader(store, small_config(), SplitPart::Train);
  try {
    while (loader.next()) {
    }
    FAIL() << "expected the out-of-range item to be reported";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("outside 1..30"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("part-0000"), std::string::npos) << e.what();
  }
}

}  // namespace longrec::data
