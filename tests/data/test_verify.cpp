// `longrec info --verify` (data::verify_dataset) and the loader's read path
// against crafted corrupt stores: each problem is found and named.
#include <gtest/gtest.h>

#include "longrec/core/error.h"
#include "longrec/data/dataset_stats.h"
#include "longrec/data/history_store.h"
#include "longrec/data/loader.h"
#include "longrec/data/prepare.h"
#include "support/h5_patch.h"
#include "support/test_support.h"

namespace longrec::data {

namespace {

constexpr int kItems = 20;

// 40 users (ids 7, 14, ..., 280) over 3 parts; user u has u % 9 + 2 events at
// times 1000 u + t; /items/count matches the events.
std::filesystem::path write_store(const std::filesystem::path& target) {
  HistoryStoreWriter writer(target, {3, false, false});
  std::vector<std::int64_t> raw(kItems), counts(kItems, 0);
  for (std::int64_t u = 1; u <= 40; ++u) {
    std::vector<std::int32_t> items;
    std::vector<std::int64_t> times;
    for (std::int64_t t = 0; t < u % 9 + 2; ++t) {
      items.push_back(static_cast<std::int32_t>((u * 31 + t * 7) % kItems + 1));
      times.push_back(1000 * u + t);
      ++counts[static_cast<std::size_t>(items.back() - 1)];
    }
    writer.add_user(u * 7, items, times);
  }
  for (int i = 0; i < kItems; ++i) raw[i] = 100 + i;
  writer.set_items(raw, counts);
  StoreMeta description;
  description.item_order = "first";
  description.source = "test";
  writer.commit(description);
  return target;
}

// Where user `raw_id`'s events start in its part file.
std::pair<std::filesystem::path, std::int64_t> events_of(const std::filesystem::path& store_dir, std::int64_t raw_id) {
  const HistoryStoreReader store(store_dir);
  const int part = part_of_user(raw_id, store.num_parts());
  const auto ids = store.part_user_ids(part);
  const auto u = std::find(ids.begin(), ids.end(), raw_id) - ids.begin();
  return {store.part_path(part), store.part_offsets(part)[static_cast<std::size_t>(u)]};
}

std::string verify_problem(const std::filesystem::path& store_dir) {
  return verify_dataset(HistoryStoreReader(store_dir)).problem;
}

// User 7 * 8 = 56 has 56 % 9 + 2 = 4 events.
constexpr std::int64_t kUser = 56;

}  // namespace

TEST(Verify, GoodStorePassesWithExactCounts) {
  testing::ScratchDir dir;
  const auto report = verify_dataset(HistoryStoreReader(write_store(dir / "store")));
  EXPECT_EQ(report.problem, "");
  EXPECT_EQ(report.parts, 3);
  EXPECT_EQ(report.users, 40);
  EXPECT_EQ(report.items, kItems);
  std::int64_t events = 0;
  for (int u = 1; u <= 40; ++u) events += u % 9 + 2;
  EXPECT_EQ(report.events, events);
  EXPECT_EQ(report.parts_with_checksums, 3);
  EXPECT_NE(format_verify_report(report).find("Fletcher-32 on every chunk, all verified"), std::string::npos);
}

TEST(Verify, Ml1mPreparedStorePassesWithExactCounts) {
  const auto input = testing::shared_data() / "ml-1m/sequences_orig_ids.txt";
  if (!std::filesystem::exists(input)) GTEST_SKIP() << input << " not present";
  testing::ScratchDir dir;
  PrepareOptions options;
  options.input = input;
  options.output = dir / "ml-1m";
  prepare_dataset(options);
  const auto report = verify_dataset(HistoryStoreReader(options.output));
  EXPECT_EQ(report.problem, "");
  EXPECT_EQ(report.users, 6040);
  EXPECT_EQ(report.items, 3706);
  EXPECT_EQ(report.events, 1000209);
  EXPECT_EQ(report.parts, 8);
  EXPECT_EQ(report.parts_with_checksums, 8);
}

TEST(Verify, ItemIdOutsideTheCatalogueIsNamed) {
  testing::ScratchDir dir;
  const auto store = write_store(dir / "store");
  const auto [part, first] = events_of(store, kUser);
  const std::int32_t bad = kItems + 1;
  ASSERT_TRUE(testing::patch_elements(part, "/events/item", first + 1, &bad, 1, H5T_NATIVE_INT32));
  const auto problem = verify_problem(store);
  EXPECT_NE(problem.find(part.string() + ":/events/item"), std::string::npos) << problem;
  EXPECT_NE(problem.find("item id 21, outside 1..20"), std::string::npos) << problem;
}

TEST(Verify, SwappedTimesAreNamedWithTheUser) {
  testing::ScratchDir dir;
  const auto store = write_store(dir / "store");
  const auto [part, first] = events_of(store, kUser);
  const std::int64_t swapped[] = {1000 * 8 + 1, 1000 * 8 + 0};
  ASSERT_TRUE(testing::patch_elements(part, "/events/time", first, swapped, 2, H5T_NATIVE_INT64));
  const auto problem = verify_problem(store);
  EXPECT_NE(problem.find(part.string() + ": user 56 has events out of time order"), std::string::npos) << problem;
  EXPECT_NE(problem.find("event 1 at time 8000 after time 8001"), std::string::npos) << problem;
}

TEST(Verify, ItemCountsThatDisagreeWithTheEventsAreNamed) {
  testing::ScratchDir dir;
  const auto store = write_store(dir / "store");
  const std::int64_t wrong = 999;
  ASSERT_TRUE(testing::patch_elements(store / "meta.h5", "/items/count", 4, &wrong, 1, H5T_NATIVE_INT64));
  const auto problem = verify_problem(store);
  EXPECT_NE(problem.find("meta.h5:/items/count: item 5 (raw id 104) has count 999, the events hold"), std::string::npos)
      << problem;
}

TEST(Verify, UserInTheWrongPartIsNamed) {
  testing::ScratchDir dir;
  const auto store = write_store(dir / "store");
  // Another id, one that hashes to another part.
  std::int64_t moved = 100000;
  while (part_of_user(moved, 3) == 0) ++moved;
  ASSERT_TRUE(testing::patch_elements(store / part_file_name(0), "/users/raw_id", 0, &moved, 1, H5T_NATIVE_INT64));
  const auto problem = verify_problem(store);
  EXPECT_NE(problem.find(fmt::format("part-00000.h5:/users/raw_id: user {} is in part 0", moved)), std::string::npos)
      << problem;
}

TEST(Verify, CorruptChunkFailsItsChecksum) {
  testing::ScratchDir dir;
  const auto store = write_store(dir / "store");
  ASSERT_TRUE(testing::flip_chunk_byte(store / part_file_name(1), "/events/time"));
  const auto problem = verify_problem(store);
  EXPECT_NE(problem.find("part-00001.h5:/events/time read"), std::string::npos) << problem;
  EXPECT_NE(problem.find("Fletcher32"), std::string::npos) << problem;
}

TEST(StoreReadPath, OutOfOrderTimesAreRefusedNamingStoreAndUser) {
  testing::ScratchDir dir;
  const auto store = write_store(dir / "store");
  const auto [part, first] = events_of(store, kUser);
  const std::int64_t swapped[] = {1000 * 8 + 1, 1000 * 8 + 0};
  ASSERT_TRUE(testing::patch_elements(part, "/events/time", first, swapped, 2, H5T_NATIVE_INT64));
  // The loader reads users through read_users, on its background thread.
  for (const auto split : {SplitPart::Train, SplitPart::Test}) {
    LoaderConfig config;
    config.batch_size = 4;
    config.max_len = 5;
    HistoryLoader loader(store, config, split);
    try {
      while (loader.next()) {
      }
      FAIL() << "expected the out-of-order times to be refused";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(part.string() + ": user 56 has events out of time order"), std::string::npos)
          << e.what();
    }
  }
}

TEST(StoreWriter, RefusesTimesOutOfOrderAndNonFiniteRatings) {
  testing::ScratchDir dir;
  {
    HistoryStoreWriter writer(dir / "a", {1, false, false});
    const std::vector<std::int32_t> items{1, 2, 3};
    const std::vector<std::int64_t> times{5, 7, 6};
    try {
      writer.add_user(9, items, times);
      FAIL() << "expected out-of-order times to be refused";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("user 9: event 2 at time 6 comes after time 7"), std::string::npos)
          << e.what();
    }
  }
  {
    HistoryStoreWriter writer(dir / "b", {1, false, true});
    const std::vector<std::int32_t> items{1, 2};
    const std::vector<std::int64_t> times{5, 6};
    const std::vector<float> ratings{4, std::numeric_limits<float>::quiet_NaN()};
    EXPECT_THROW(writer.add_user(9, items, times, ratings), DataError);
  }
  // Neither writer committed: nothing under the target names, no temporaries.
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

}  // namespace longrec::data
