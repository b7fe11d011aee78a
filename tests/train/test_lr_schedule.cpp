// The learning-rate multiplier against values computed by hand: a linear
// warm-up (step + 1) / warmup, then constant, or a cosine from 1 down to
// min_lr_ratio at total_steps (and min_lr_ratio after it).
#include <gtest/gtest.h>

#include <cstdint>

#include "longrec/train/lr_schedule.h"

namespace longrec::train {

namespace {

// Tolerance for the values involving an irrational cosine, written out below to 16 digits.
constexpr double kTol = 1e-12;

}  // namespace

TEST(LrSchedule, WarmUpRampsLinearlyFromOneStepToTheFullRate) {
  for (const auto* schedule : {"constant", "cosine"}) {
    SCOPED_TRACE(schedule);
    EXPECT_DOUBLE_EQ(lr_scale(0, 4, 100, schedule, 0.1), 0.25);
    EXPECT_DOUBLE_EQ(lr_scale(1, 4, 100, schedule, 0.1), 0.5);
    EXPECT_DOUBLE_EQ(lr_scale(2, 4, 100, schedule, 0.1), 0.75);
    EXPECT_DOUBLE_EQ(lr_scale(3, 4, 100, schedule, 0.1), 1.0);  // the last warm-up step is the full rate
    EXPECT_DOUBLE_EQ(lr_scale(0, 10, 100, schedule, 0.1), 0.1);
    EXPECT_DOUBLE_EQ(lr_scale(4, 10, 100, schedule, 0.1), 0.5);
    EXPECT_DOUBLE_EQ(lr_scale(0, 1, 100, schedule, 0.1), 1.0);
  }
}

TEST(LrSchedule, ConstantAfterWarmUp) {
  for (const std::int64_t step : {4, 5, 50, 99, 100, 101, 1000000}) {
    EXPECT_DOUBLE_EQ(lr_scale(step, 4, 100, "constant", 0.1), 1.0) << "step " << step;
  }
  // No warm-up: the full rate from step 0.
  EXPECT_DOUBLE_EQ(lr_scale(0, 0, 100, "constant", 0.1), 1.0);
  EXPECT_DOUBLE_EQ(lr_scale(7, 0, 100, "constant", 0.1), 1.0);
  // min_lr_ratio is the cosine's floor only: a constant schedule ignores it.
  EXPECT_DOUBLE_EQ(lr_scale(200, 4, 100, "constant", 0.5), 1.0);
}

// warmup 10, total 110: the cosine runs over the 100 steps 10..110,
// scale = m + (1 - m) * (1 + cos(pi * (step - 10) / 100)) / 2.
TEST(LrSchedule, CosineFromTheFullRateToMinLrRatio) {
  const double m = 0.1;
  EXPECT_DOUBLE_EQ(lr_scale(9, 10, 110, "cosine", m), 1.0);   // last warm-up step
  EXPECT_DOUBLE_EQ(lr_scale(10, 10, 110, "cosine", m), 1.0);  // start: cos(0) = 1
  // A quarter: 0.1 + 0.9 * (1 + sqrt(2) / 2) / 2.
  EXPECT_NEAR(lr_scale(35, 10, 110, "cosine", m), 0.8681980515339464, kTol);
  // The middle: 0.1 + 0.9 * (1 + 0) / 2.
  EXPECT_DOUBLE_EQ(lr_scale(60, 10, 110, "cosine", m), 0.55);
  // Three quarters: 0.1 + 0.9 * (1 - sqrt(2) / 2) / 2.
  EXPECT_NEAR(lr_scale(85, 10, 110, "cosine", m), 0.2318019484660537, kTol);
  // One step of 100 in: 0.1 + 0.9 * (1 + cos(pi / 100)) / 2.
  EXPECT_NEAR(lr_scale(11, 10, 110, "cosine", m), 0.9997779521645792, kTol);
  // The end, and after it: the floor.
  EXPECT_DOUBLE_EQ(lr_scale(110, 10, 110, "cosine", m), 0.1);
  EXPECT_DOUBLE_EQ(lr_scale(111, 10, 110, "cosine", m), 0.1);
  EXPECT_DOUBLE_EQ(lr_scale(1000000, 10, 110, "cosine", m), 0.1);
}

TEST(LrSchedule, CosineWithoutWarmUpStartsAtTheFullRate) {
  EXPECT_DOUBLE_EQ(lr_scale(0, 0, 4, "cosine", 0.0), 1.0);
  // 0.5 * (1 + cos(pi / 4)), (1 + cos(pi / 2)) / 2, (1 + cos(3 pi / 4)) / 2, then 0.
  EXPECT_NEAR(lr_scale(1, 0, 4, "cosine", 0.0), 0.8535533905932737, kTol);
  EXPECT_NEAR(lr_scale(2, 0, 4, "cosine", 0.0), 0.5, kTol);
  EXPECT_NEAR(lr_scale(3, 0, 4, "cosine", 0.0), 0.1464466094067263, kTol);
  EXPECT_NEAR(lr_scale(4, 0, 4, "cosine", 0.0), 0.0, kTol);
  EXPECT_NEAR(lr_scale(5, 0, 4, "cosine", 0.0), 0.0, kTol);
}

TEST(LrSchedule, MinLrRatioIsTheFloorOfTheCosine) {
  for (const double m : {0.0, 0.05, 0.1, 0.5, 1.0}) {
    SCOPED_TRACE(m);
    double previous = 1.0;
    for (std::int64_t step = 5; step <= 130; ++step) {
      const double scale = lr_scale(step, 5, 105, "cosine", m);
      EXPECT_GE(scale, m) << "step " << step;
      EXPECT_LE(scale, 1.0) << "step " << step;
      EXPECT_LE(scale, previous) << "step " << step;  // never rises after warm-up
      previous = scale;
    }
    EXPECT_NEAR(lr_scale(105, 5, 105, "cosine", m), m, kTol);
    EXPECT_NEAR(lr_scale(130, 5, 105, "cosine", m), m, kTol);
    // The middle is halfway between the full rate and the floor.
    EXPECT_NEAR(lr_scale(55, 5, 105, "cosine", m), (1.0 + m) / 2, kTol);
  }
  // min_lr_ratio 1: no decay at all.
  EXPECT_DOUBLE_EQ(lr_scale(60, 10, 110, "cosine", 1.0), 1.0);
}

TEST(LrSchedule, OneCosineStepGoesStraightToTheFloor) {
  EXPECT_DOUBLE_EQ(lr_scale(3, 3, 4, "cosine", 0.2), 1.0);
  EXPECT_DOUBLE_EQ(lr_scale(4, 3, 4, "cosine", 0.2), 0.2);
}

// warmup >= total_steps leaves no room for a cosine: the warm-up ramp, then the full rate.
TEST(LrSchedule, WarmUpAtLeastTotalStepsNeverDecays) {
  for (const std::int64_t total : {10, 5, 0}) {
    SCOPED_TRACE(total);
    EXPECT_DOUBLE_EQ(lr_scale(0, 10, total, "cosine", 0.1), 0.1);
    EXPECT_DOUBLE_EQ(lr_scale(4, 10, total, "cosine", 0.1), 0.5);
    EXPECT_DOUBLE_EQ(lr_scale(9, 10, total, "cosine", 0.1), 1.0);
    EXPECT_DOUBLE_EQ(lr_scale(10, 10, total, "cosine", 0.1), 1.0);
    EXPECT_DOUBLE_EQ(lr_scale(11, 10, total, "cosine", 0.1), 1.0);
    EXPECT_DOUBLE_EQ(lr_scale(1000, 10, total, "cosine", 0.1), 1.0);
  }
}

}  // namespace longrec::train
