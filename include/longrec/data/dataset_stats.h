// Statistics of a history store, computed from its offsets and metadata
// (no event is read): what `longrec info DATASET` prints.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "longrec/data/history_store.h"

namespace longrec::data {

struct DatasetStats {
  StoreMeta meta;
  double mean_length = 0;
  std::int64_t min_length = 0, p50 = 0, p90 = 0, p99 = 0, max_length = 0;
  std::int64_t users_at_least_200 = 0, users_at_least_1000 = 0;
};

DatasetStats compute_dataset_stats(const HistoryStoreReader& store);
std::string format_dataset_stats(const DatasetStats& stats, const std::filesystem::path& directory);

}  // namespace longrec::data
