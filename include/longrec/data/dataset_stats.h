// Statistics of a history store, computed from its offsets and metadata
// (no event is read): what `longrec info --dataset DIR` prints; and the full
// check of `longrec info --dataset DIR --verify`, which reads every event.
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

// Reads every chunk of every dataset of the store (each part's users, offsets,
// items, times and ratings; the item table) and checks: item ids in
// 1..num_items, each user's times in order, offsets and sizes consistent,
// every user in the part its id hashes to and in one part only, item raw ids
// distinct, /items/count equal to the events of each item, times inside
// meta's min_time..max_time, ratings finite, and the chunk checksums where the
// store has them (HDF5 verifies them on read).
struct VerifyReport {
  std::int64_t parts = 0, users = 0, events = 0, items = 0, reads = 0;
  int parts_with_checksums = 0;
  std::string problem;  // the first problem found, with its file, dataset and user; empty when none
};
VerifyReport verify_dataset(const HistoryStoreReader& store);
std::string format_verify_report(const VerifyReport& report);

}  // namespace longrec::data
