#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>

#include "longrec/core/error.h"
#include "longrec/data/dataset_stats.h"
#include "longrec/data/history_store.h"
#include "longrec/data/prepare.h"
#include "support/test_support.h"

namespace longrec::data {

namespace {

// Prepares a real public dataset from ../shared/data and checks its counts.
void expect_counts(const std::string& input, const std::string& items, std::int64_t users, std::int64_t num_items,
                   std::int64_t events, bool ordinal) {
  const auto path = testing::shared_data() / input;
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not present";
  testing::ScratchDir dir;
  PrepareOptions options;
  options.input = path;
  if (!items.empty()) options.item_text = testing::shared_data() / items;
  options.output = dir / "store";
  const auto report = prepare_dataset(options);
  EXPECT_EQ(report.meta.num_users, users);
  EXPECT_EQ(report.meta.num_items, num_items);
  EXPECT_EQ(report.meta.num_events, events);
  EXPECT_EQ(report.bad_lines, 0);
  const HistoryStoreReader store(options.output);
  EXPECT_EQ(store.meta().num_users, users);
  EXPECT_EQ(store.meta().num_items, num_items);
  EXPECT_EQ(store.meta().num_events, events);
  EXPECT_EQ(store.meta().time_is_ordinal, ordinal);
  EXPECT_EQ(store.meta().has_item_text, !items.empty());
  if (!items.empty()) {
    EXPECT_EQ(report.items_without_text, 0);
    EXPECT_EQ(store.item_text().size(), static_cast<std::size_t>(num_items));
  }
  // Events per user are sorted by time, and the part sizes add up.
  std::int64_t total = 0;
  for (int p = 0; p < store.num_parts(); ++p) {
    const auto offsets = store.part_offsets(p);
    std::vector<std::int32_t> item(static_cast<std::size_t>(offsets.back()));
    std::vector<std::int64_t> time(item.size());
    store.read_events(p, 0, offsets.back(), item.data(), time.data());
    for (std::size_t u = 0; u + 1 < offsets.size(); ++u) {
      EXPECT_TRUE(std::is_sorted(time.begin() + offsets[u], time.begin() + offsets[u + 1]));
    }
    total += offsets.back();
  }
  EXPECT_EQ(total, events);
}

}  // namespace

TEST(PrepareRealData, Ml1mSequences) {
  expect_counts("ml-1m/sequences_orig_ids.txt", "ml-1m/movies.dat", 6040, 3706, 1000209, true);
}
TEST(PrepareRealData, Ml100kUData) { expect_counts("ml-100k/u.data", "ml-100k/u.item", 943, 1682, 100000, false); }
TEST(PrepareRealData, MlLatestSmallCsv) {
  expect_counts("ml-latest-small/ratings.csv", "ml-latest-small/movies.csv", 610, 9724, 100836, false);
}
TEST(PrepareRealData, AmazonBeautySeq) { expect_counts("amazon-beauty/Beauty.txt", "", 22363, 12101, 198502, true); }

// --keep_unrated_items (issue 18, item 10): the HSTU reference ranks all 3,883
// movies of movies.dat, 177 of which no ML-1M user rated. The rated items keep
// their ids 1..3,706; the unrated ones follow with count 0, and the store verifies.
TEST(PrepareRealData, Ml1mKeepsUnratedMoviesAfterTheRatedOnes) {
  const auto input = testing::shared_data() / "ml-1m" / "sequences_orig_ids.txt";
  if (!std::filesystem::exists(input)) GTEST_SKIP() << input << " not present";
  testing::ScratchDir dir;
  PrepareOptions options;
  options.input = input;
  options.item_text = testing::shared_data() / "ml-1m" / "movies.dat";
  options.output = dir / "rated";
  prepare_dataset(options);
  options.output = dir / "all";
  options.keep_unrated_items = true;
  const auto report = prepare_dataset(options);
  EXPECT_EQ(report.unrated_items, 177);
  EXPECT_EQ(report.meta.num_items, 3883);
  EXPECT_EQ(report.meta.num_events, 1000209);
  EXPECT_EQ(report.items_without_text, 0);
  const HistoryStoreReader rated(dir / "rated"), all(dir / "all");
  auto ids = all.item_raw_ids();
  auto counts = all.item_counts();
  ASSERT_EQ(ids.size(), 3883u);
  EXPECT_EQ(std::vector<std::int64_t>(ids.begin(), ids.begin() + 3706), rated.item_raw_ids());
  EXPECT_EQ(std::vector<std::int64_t>(counts.begin(), counts.begin() + 3706), rated.item_counts());
  EXPECT_TRUE(std::all_of(counts.begin() + 3706, counts.end(), [](std::int64_t c) { return c == 0; }));
  const auto verified = verify_dataset(all);
  EXPECT_EQ(verified.problem, "");
  EXPECT_EQ(verified.items, 3883);
}

TEST(Prepare, KeepUnratedItemsAddsTheItemFilesOthersOnly) {
  testing::ScratchDir dir;
  PrepareOptions options;
  // Item 9 has one event (removed by the filter: it stays out); 7 and 8 have none.
  options.input = testing::write_file(dir / "s.txt", "1 5 6 6 9\n2 6 5 6\n");
  options.item_text = testing::write_file(dir / "items.dat",
                                          "8::Eight (1990)::Drama\n5::Five (1995)::Comedy\n7::Seven (1995)::Crime\n"
                                          "9::Nine (2009)::Animation\n6::Six (1996)::Action\n");
  options.output = dir / "store";
  options.min_item_events = 2;
  options.keep_unrated_items = true;
  const auto report = prepare_dataset(options);
  EXPECT_EQ(report.unrated_items, 2);
  const HistoryStoreReader store(options.output);
  EXPECT_EQ(store.item_raw_ids(), (std::vector<std::int64_t>{5, 6, 8, 7}));
  EXPECT_EQ(store.item_counts(), (std::vector<std::int64_t>{2, 4, 0, 0}));
  EXPECT_NE(store.item_text()[2].find("Eight"), std::string::npos);
  EXPECT_EQ(verify_dataset(store).problem, "");
  EXPECT_EQ(report.text_lines_unused, 1);  // 9
  // Without an item file there is nothing to keep.
  options.item_text.clear();
  options.output = dir / "other";
  try {
    prepare_dataset(options);
    FAIL() << "keep_unrated_items without an item file was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("prepare.keep_unrated_items"), std::string::npos) << e.what();
  }
}

TEST(Prepare, SortsByTimeAndMapsItemsByFirstAppearance) {
  testing::ScratchDir dir;
  PrepareOptions options;
  options.input = testing::write_file(dir / "log.tsv", "2\t500\t1\t30\n1\t300\t1\t20\n1\t100\t1\t10\n2\t300\t1\t5\n");
  options.output = dir / "store";
  options.num_parts = 1;
  prepare_dataset(options);
  const HistoryStoreReader store(options.output);
  EXPECT_EQ(store.item_raw_ids(), (std::vector<std::int64_t>{500, 300, 100}));
  EXPECT_EQ(store.item_counts(), (std::vector<std::int64_t>{1, 2, 1}));
  EXPECT_EQ(store.part_user_ids(0), (std::vector<std::int64_t>{1, 2}));
  std::vector<std::int32_t> items(4);
  std::vector<std::int64_t> times(4);
  store.read_events(0, 0, 4, items.data(), times.data());
  EXPECT_EQ(items, (std::vector<std::int32_t>{3, 2, 2, 1}));  // user 1: 100@10, 300@20; user 2: 300@5, 500@30
  EXPECT_EQ(times, (std::vector<std::int64_t>{10, 20, 5, 30}));
}

TEST(Prepare, FrequencyOrderAndFiltersReportWhatTheyDrop) {
  testing::ScratchDir dir;
  // Item 9 appears once; user 3 has one event.
  PrepareOptions options;
  options.input = testing::write_file(dir / "s.txt", "1 5 6 6 9\n2 6 5 6\n3 6\n");
  options.output = dir / "store";
  options.item_order = "frequency";
  options.min_item_events = 2;
  options.min_user_events = 2;
  const auto report = prepare_dataset(options);
  EXPECT_EQ(report.meta.num_users, 2);
  EXPECT_EQ(report.meta.num_events, 6);
  ASSERT_EQ(report.drops.size(), 2u);
  EXPECT_EQ(report.drops[0],
            "min_item_events 2: dropped 1 event; removed 1 item (fewer than 2 events) and 0 users (every event was "
            "of such items)");
  EXPECT_EQ(report.drops[1],
            "min_user_events 2: dropped 1 event; removed 1 user (fewer than 2 events) and 0 items (every event was "
            "by such users)");
  const HistoryStoreReader store(options.output);
  EXPECT_EQ(store.item_raw_ids(), (std::vector<std::int64_t>{6, 5}));  // 6 x4, 5 x2 (first appearance: 5, 6)
  EXPECT_EQ(store.item_counts(), (std::vector<std::int64_t>{4, 2}));
}

TEST(Prepare, KCoreIteratesToAFixedPoint) {
  testing::ScratchDir dir;
  // With k = 2: item 4 (once) goes, then user 3 has one event left and goes,
  // which leaves item 3 with one event, so it goes too.
  PrepareOptions options;
  options.input = testing::write_file(dir / "s.txt", "1 1 2 1 2\n2 2 1\n3 3 4\n4 3 1 2\n");
  options.output = dir / "store";
  options.k_core = 2;
  const auto report = prepare_dataset(options);
  EXPECT_EQ(report.meta.num_items, 2);
  EXPECT_EQ(report.meta.num_users, 3);
  EXPECT_EQ(report.meta.num_events, 8);
  // Round 1: item 4 (1 event), then user 3 (its event of item 3); round 2:
  // item 3 (user 4's event); round 3 changes nothing.
  ASSERT_EQ(report.filters.size(), 2u);
  EXPECT_EQ(report.filters[0].filter, "min_item_events");
  EXPECT_EQ(report.filters[0].minimum, 2);
  EXPECT_EQ(report.filters[0].events, 2);
  EXPECT_EQ(report.filters[0].items, 2);
  EXPECT_EQ(report.filters[0].users, 0);
  EXPECT_EQ(report.filters[1].filter, "min_user_events");
  EXPECT_EQ(report.filters[1].events, 1);
  EXPECT_EQ(report.filters[1].users, 1);
  EXPECT_EQ(report.filters[1].items, 0);
  EXPECT_EQ(report.drops.back(), "2-core reached after 3 rounds");
}

TEST(Prepare, FiltersCountTheItemsAndUsersTheyRemoveAsAKnockOn) {
  testing::ScratchDir dir;
  // min_item_events 2 removes items 9 and 8 (one event each); user 5 had only
  // item 8 and goes with it. min_user_events 2 then removes users 3 and 4 (one
  // event each); item 7 was theirs alone and goes with them.
  PrepareOptions options;
  options.input = testing::write_file(dir / "s.txt", "1 5 6 6 9\n2 6 5 6 5\n3 7\n4 7\n5 8\n");
  options.read.format = "seq";
  options.output = dir / "store";
  options.min_item_events = 2;
  options.min_user_events = 2;
  const auto report = prepare_dataset(options);
  EXPECT_EQ(report.raw_users, 5);
  EXPECT_EQ(report.raw_items, 5);
  EXPECT_EQ(report.raw_events, 11);
  EXPECT_EQ(report.meta.num_users, 2);
  EXPECT_EQ(report.meta.num_items, 2);
  EXPECT_EQ(report.meta.num_events, 7);
  ASSERT_EQ(report.filters.size(), 2u);
  const auto& by_item = report.filters[0];
  const auto& by_user = report.filters[1];
  EXPECT_EQ(by_item.filter, "min_item_events");
  EXPECT_EQ(by_item.events, 2);
  EXPECT_EQ(by_item.items, 2);
  EXPECT_EQ(by_item.users, 1);
  EXPECT_EQ(by_user.filter, "min_user_events");
  EXPECT_EQ(by_user.events, 2);
  EXPECT_EQ(by_user.users, 2);
  EXPECT_EQ(by_user.items, 1);
  ASSERT_EQ(report.drops.size(), 2u);
  EXPECT_EQ(report.drops[0],
            "min_item_events 2: dropped 2 events; removed 2 items (fewer than 2 events) and 1 user (every event was "
            "of such items)");
  EXPECT_EQ(report.drops[1],
            "min_user_events 2: dropped 2 events; removed 2 users (fewer than 2 events) and 1 item (every event was "
            "by such users)");
  const HistoryStoreReader store(options.output);
  EXPECT_EQ(store.item_raw_ids(), (std::vector<std::int64_t>{5, 6}));
}

// ml-latest-small (610 users, 9724 items, 100836 ratings) through the filters;
// the kept counts match an independent fixed-point computation (Python, over
// ratings.csv), and the removed users, items and events add up to the raw ones.
TEST(PrepareRealData, MlLatestSmallFiltersReportEveryRemovedItem) {
  const auto path = testing::shared_data() / "ml-latest-small/ratings.csv";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not present";
  struct Case {
    int min_user, min_item, k_core;
    std::int64_t users, items, events;
  };
  for (const Case c : {Case{1, 1, 10, 609, 2269, 81109}, Case{50, 1, 0, 385, 9633, 93812}}) {
    testing::ScratchDir dir;
    PrepareOptions options;
    options.input = path;
    options.output = dir / "store";
    options.min_user_events = c.min_user;
    options.min_item_events = c.min_item;
    options.k_core = c.k_core;
    const auto report = prepare_dataset(options);
    EXPECT_EQ(report.meta.num_users, c.users) << c.k_core;
    EXPECT_EQ(report.meta.num_items, c.items) << c.k_core;
    EXPECT_EQ(report.meta.num_events, c.events) << c.k_core;
    std::int64_t users = 0, items = 0, events = 0;
    for (const auto& f : report.filters) {
      users += f.users;
      items += f.items;
      events += f.events;
    }
    EXPECT_EQ(users, 610 - c.users) << c.k_core;
    EXPECT_EQ(items, 9724 - c.items) << c.k_core;
    EXPECT_EQ(events, 100836 - c.events) << c.k_core;
  }
  // min_user_events 50 alone: 225 users go, and 91 items whose every rating was theirs.
  testing::ScratchDir dir;
  PrepareOptions options;
  options.input = path;
  options.output = dir / "store";
  options.min_user_events = 50;
  const auto report = prepare_dataset(options);
  ASSERT_EQ(report.filters.size(), 1u);
  EXPECT_EQ(report.filters[0].users, 225);
  EXPECT_EQ(report.filters[0].items, 91);
  EXPECT_EQ(report.filters[0].events, 7024);
}

TEST(Prepare, ReadProgressReachesTheFileSize) {
  testing::ScratchDir dir;
  std::string text;
  for (int u = 1; u <= 9000; ++u) text += fmt::format("{}\t{}\t1\t{}\r\n", u, u % 50 + 1, u);
  const auto input = testing::write_file(dir / "log.tsv", text);
  RawReadOptions read;
  std::vector<std::int64_t> seen;
  read.on_progress = [&](std::int64_t bytes) { seen.push_back(bytes); };
  const auto raw = read_interactions(input, read);
  EXPECT_EQ(raw.items.size(), 9000u);
  // Every 4096 lines, then at the end: exactly the file's bytes, "\r\n" included.
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(seen.back(), static_cast<std::int64_t>(std::filesystem::file_size(input)));
}

TEST(Prepare, RefusesNonEmptyTargetWithoutOverwrite) {
  testing::ScratchDir dir;
  PrepareOptions options;
  options.input = testing::write_file(dir / "s.txt", "1 1 2\n");
  options.output = dir / "store";
  std::filesystem::create_directories(options.output);
  testing::write_file(options.output / "keep.txt", "precious");
  try {
    prepare_dataset(options);
    FAIL() << "expected refusal";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("--overwrite"), std::string::npos);
  }
  EXPECT_TRUE(std::filesystem::exists(options.output / "keep.txt"));
  options.overwrite = true;
  prepare_dataset(options);
  EXPECT_FALSE(std::filesystem::exists(options.output / "keep.txt"));
  EXPECT_EQ(HistoryStoreReader(options.output).meta().num_events, 2);
}

TEST(Prepare, ABadLineLeavesNoDatasetBehind) {
  testing::ScratchDir dir;
  PrepareOptions options;
  options.input = testing::write_file(dir / "s.txt", "1 1 2\n2 x\n");
  options.output = dir / "store";
  EXPECT_THROW(prepare_dataset(options), DataError);
  EXPECT_FALSE(std::filesystem::exists(options.output));
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(entry.path().filename(), "s.txt") << "left behind: " << entry.path();
  }
}

// Issue 18, item 1: a time column that holds one value for every event is
// reported (the order stays the file's; HSTU's time gaps would all be zero).
TEST(Prepare, EveryEventAtTheSameTimeIsReported) {
  testing::ScratchDir dir;
  PrepareOptions options;
  options.input = testing::write_file(dir / "log.csv", "user,item,time\n1,10,0\n1,11,0\n2,10,0\n");
  options.output = dir / "store";
  const auto report = prepare_dataset(options);
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_NE(report.warnings[0].find("every event of " + options.input.string() + " has the time 0"), std::string::npos)
      << report.warnings[0];
  PrepareOptions timed = options;
  timed.input = testing::write_file(dir / "t.csv", "user,item,time\n1,10,5\n1,11,6\n2,10,5\n");
  timed.output = dir / "store2";
  EXPECT_TRUE(prepare_dataset(timed).warnings.empty());
}

}  // namespace longrec::data
