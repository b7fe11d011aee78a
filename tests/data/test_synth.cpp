#include <gtest/gtest.h>

#include "longrec/data/history_store.h"
#include "longrec/data/synth.h"
#include "support/test_support.h"

namespace longrec::data {

namespace {

std::vector<std::int32_t> all_items(const HistoryStoreReader& store) {
  std::vector<std::int32_t> out;
  for (int p = 0; p < store.num_parts(); ++p) {
    const auto offsets = store.part_offsets(p);
    std::vector<std::int32_t> items(static_cast<std::size_t>(offsets.back()));
    std::vector<std::int64_t> times(items.size());
    store.read_events(p, 0, offsets.back(), items.data(), times.data());
    out.insert(out.end(), items.begin(), items.end());
  }
  return out;
}

}  // namespace

TEST(Synth, SeededLengthsInRangeAndDeterministic) {
  testing::ScratchDir dir;
  SynthConfig c;
  c.users = 300;
  c.items = 500;
  c.clusters = 20;
  c.mean_length = 60;
  c.min_length = 10;
  c.max_length = 400;
  c.out = (dir / "a").string();
  const auto report = generate_synthetic(c);
  c.out = (dir / "b").string();
  generate_synthetic(c);
  c.seed = 2;
  c.out = (dir / "c").string();
  generate_synthetic(c);
  const HistoryStoreReader a(dir / "a"), b(dir / "b"), other(dir / "c");
  EXPECT_EQ(report.meta.num_users, 300);
  EXPECT_EQ(a.meta().num_items, 500);
  EXPECT_FALSE(a.meta().time_is_ordinal);
  EXPECT_EQ(all_items(a), all_items(b));
  EXPECT_NE(all_items(a), all_items(other));
  double mean = static_cast<double>(a.meta().num_events) / 300.0;
  EXPECT_GT(mean, 30.0);
  EXPECT_LT(mean, 90.0);
  for (int p = 0; p < a.num_parts(); ++p) {
    const auto offsets = a.part_offsets(p);
    for (std::size_t u = 0; u + 1 < offsets.size(); ++u) {
      EXPECT_GE(offsets[u + 1] - offsets[u], 10);
      EXPECT_LE(offsets[u + 1] - offsets[u], 400);
    }
  }
  std::int64_t counted = 0;
  for (auto n : a.item_counts()) counted += n;
  EXPECT_EQ(counted, a.meta().num_events);
}

}  // namespace longrec::data
