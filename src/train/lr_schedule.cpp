#include "longrec/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace longrec::train {

double lr_scale(std::int64_t step, std::int64_t warmup_steps, std::int64_t total_steps, const std::string& schedule,
                double min_lr_ratio) {
  if (step < warmup_steps) return static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (schedule != "cosine" || total_steps <= warmup_steps) return 1.0;
  const double progress = std::clamp(static_cast<double>(step - warmup_steps) /
                                         static_cast<double>(std::max<std::int64_t>(1, total_steps - warmup_steps)),
                                     0.0, 1.0);
  return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace longrec::train
