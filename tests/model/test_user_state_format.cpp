// The serialised UserState layout without LibTorch (also run under ASan + UBSan):
// what is written reads back, and damaged or hostile bytes are refused without
// reading past the end or allocating what the bytes cannot hold.
#include <gtest/gtest.h>

#include <cstring>

#include "longrec/core/checksum.h"
#include "longrec/core/error.h"
#include "longrec/model/user_state_format.h"

namespace longrec::model {
namespace {

// A record of 2 layers, 3 cached tokens, 2 heads of width 4 (float32).
struct Sample {
  std::vector<float> elements = std::vector<float>(2 * 3 * 4);
  UserStateRecord record;
  Sample() {
    for (std::size_t i = 0; i < elements.size(); ++i) elements[i] = 0.5f * static_cast<float>(i);
    record.signature = "hstu d=8 h=2";
    record.events_seen = 40;
    record.dropped_events = 8;
    record.dropped_groups = 1;
    record.groups_done = 3;
    record.next_position = 35;
    record.raw_items = {4, 5, 6};
    record.raw_times = {100, 101, 102};
    record.token_positions = {7, 15, 23};
    record.token_times = {10, 20, 30};
    for (int layer = 0; layer < 2; ++layer) {
      UserStateRecord::CachedTensor t;
      t.shape = {1, 2, 3, 4};
      t.data = reinterpret_cast<const char*>(elements.data());
      t.bytes = elements.size() * sizeof(float);
      record.keys.push_back(t);
      record.values.push_back(t);
    }
  }
};

// Bytes with the checksum recomputed, so that a test (or a fuzzer) reaches the fields behind it.
std::string with_checksum(std::string bytes) {
  Crc32 crc;
  crc.update(bytes.data(), bytes.size() - 4);
  const auto value = crc.value();
  std::memcpy(bytes.data() + bytes.size() - 4, &value, 4);
  return bytes;
}

std::string refusal(const std::string& bytes) {
  try {
    (void)read_user_state_record(bytes);
  } catch (const DataError& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(UserStateFormat, WhatIsWrittenReadsBack) {
  Sample s;
  const auto bytes = write_user_state_record(s.record);
  const auto back = read_user_state_record(bytes);
  EXPECT_EQ(back.signature, s.record.signature);
  EXPECT_EQ(back.events_seen, 40);
  EXPECT_EQ(back.groups_done, 3);
  EXPECT_EQ(back.raw_items, s.record.raw_items);
  EXPECT_EQ(back.token_times, s.record.token_times);
  ASSERT_EQ(back.keys.size(), 2u);
  EXPECT_EQ(back.values[1].shape, (std::array<std::int64_t, 4>{1, 2, 3, 4}));
  ASSERT_EQ(back.values[1].bytes, s.elements.size() * 4);
  EXPECT_EQ(std::memcmp(back.values[1].data, s.elements.data(), back.values[1].bytes), 0);
  EXPECT_EQ(write_user_state_record(back), bytes);
}

TEST(UserStateFormat, EveryTruncationIsRefused) {
  Sample s;
  const auto bytes = write_user_state_record(s.record);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    // Cut, checksum made valid again: the reader must still find the missing bytes.
    auto cut = bytes.substr(0, n);
    if (cut.size() >= 16) cut = with_checksum(cut);
    EXPECT_NE(refusal(cut), "(accepted)") << "accepted the first " << n << " bytes";
  }
  EXPECT_EQ(refusal(bytes.substr(0, bytes.size() - 1) + "x"), "user state: checksum mismatch (damaged bytes)");
}

TEST(UserStateFormat, HostileCountsAndShapesAreRefusedBeforeAllocating) {
  Sample s;
  const auto bytes = write_user_state_record(s.record);
  const std::size_t counters = 8 + 4 + 8 + s.record.signature.size() + 1;  // offset of events_seen
  const std::size_t raw_items = counters + 8 + 8 + 4 + 4 + 8;              // offset of raw_items' count
  auto patch = [&](std::size_t offset, std::int64_t value) {
    auto b = bytes;
    std::memcpy(b.data() + offset, &value, 8);
    return with_checksum(b);
  };
  EXPECT_NE(refusal(patch(raw_items, std::int64_t{1} << 60)).find("raw_items claims"), std::string::npos);
  EXPECT_NE(refusal(patch(raw_items, -1)).find("raw_items claims"), std::string::npos);
  EXPECT_NE(refusal(patch(counters, -5)).find("inconsistent counters"), std::string::npos);
  EXPECT_NE(refusal(patch(8 + 4, std::int64_t{1} << 40)).find("signature of"), std::string::npos);
  // The first layer's key shape, right after the layer count.
  const std::size_t shape = bytes.size() - 4 - 2 * 2 * (32 + s.elements.size() * 4);
  EXPECT_NE(refusal(patch(shape + 8, -2)).find("dimension -2 out of range"), std::string::npos);
  EXPECT_NE(refusal(patch(shape + 24, std::int64_t{1} << 30)).find("larger than the bytes left"), std::string::npos);
  EXPECT_NE(refusal(patch(shape + 16, 4)).find("expected 1 x heads x 3 cached tokens"), std::string::npos);
}

TEST(UserStateFormat, NotAStateIsRefused) {
  EXPECT_EQ(refusal(""), "not a longrec user state (bad magic bytes)");
  EXPECT_EQ(refusal("LRUSTATExxxxxxxx"), "user state: checksum mismatch (damaged bytes)");
  Sample s;
  s.record.raw_times.pop_back();
  EXPECT_EQ(refusal(write_user_state_record(s.record)), "user state: inconsistent event or token counts");
}

}  // namespace
}  // namespace longrec::model
