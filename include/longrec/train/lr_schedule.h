// Learning-rate schedules: linear warm-up, then constant or cosine decay to
// min_lr_ratio of the base rate at total_steps.
#pragma once

#include <cstdint>
#include <string>

namespace longrec::train {

// Multiplier of the base learning rate at `step` (0-based).
double lr_scale(std::int64_t step, std::int64_t warmup_steps, std::int64_t total_steps, const std::string& schedule,
                double min_lr_ratio);

}  // namespace longrec::train
