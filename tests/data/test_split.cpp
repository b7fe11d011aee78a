#include <gtest/gtest.h>

#include "longrec/core/error.h"
#include "longrec/data/split.h"

namespace longrec::data {

TEST(Split, LeaveOneOut) {
  const auto train = split_user(5, SplitProtocol::Loo, SplitPart::Train);
  EXPECT_EQ(train.train_end, 4);
  EXPECT_EQ(split_user(5, SplitProtocol::Loo, SplitPart::Test).eval_target, 4);
  EXPECT_EQ(split_user(5, SplitProtocol::Loo, SplitPart::Valid).eval_target, 4);
}

TEST(Split, LastTwo) {
  EXPECT_EQ(split_user(5, SplitProtocol::Last2, SplitPart::Train).train_end, 3);
  EXPECT_EQ(split_user(5, SplitProtocol::Last2, SplitPart::Valid).eval_target, 3);
  EXPECT_EQ(split_user(5, SplitProtocol::Last2, SplitPart::Test).eval_target, 4);
}

TEST(Split, TooShortHistoriesHaveNoTarget) {
  EXPECT_EQ(split_user(1, SplitProtocol::Loo, SplitPart::Test).eval_target, -1);
  EXPECT_EQ(split_user(1, SplitProtocol::Loo, SplitPart::Train).train_end, 0);
  EXPECT_EQ(split_user(2, SplitProtocol::Last2, SplitPart::Valid).eval_target, -1);
  EXPECT_EQ(split_user(2, SplitProtocol::Last2, SplitPart::Test).eval_target, 1);
}

TEST(Split, NamesAreParsedAndBadOnesNamed) {
  EXPECT_EQ(parse_split_protocol("last2"), SplitProtocol::Last2);
  EXPECT_EQ(parse_split_part("valid"), SplitPart::Valid);
  try {
    parse_split_protocol("random");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "data.split");
  }
}

}  // namespace longrec::data
