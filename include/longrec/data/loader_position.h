// Where a loader is in its stream: all a checkpoint needs to resume it exactly.
#pragma once

#include <cstdint>

namespace longrec::data {

struct LoaderPosition {
  std::int64_t epoch = 0;
  std::int64_t batch = 0;  // global batches already handed out in this epoch
  bool operator==(const LoaderPosition&) const = default;
};

}  // namespace longrec::data
