// One batch of histories as the loader hands it out: row-major padded
// arrays, torch-free (the model module turns it into tensors).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace longrec::data {

// Base of whatever a consumer prepares for a batch on the loader's thread
// (HistoryLoader::set_batch_preparer); the data module never looks inside.
struct BatchPreparation {
  virtual ~BatchPreparation() = default;
};

// Row-major padded arrays; rows are left-aligned, padding is item 0.
struct Batch {
  bool training = true;                     // train batch (targets per position) or eval batch (one target per row)
  std::int64_t epoch = 0;                   // the epoch it belongs to
  std::int64_t global_index = 0;            // which global batch of the epoch this is
  int rows = 0;                             // B: this rank's rows (may be 0 on some ranks)
  int global_rows = 0;                      // rows of the global batch over all ranks
  int width = 0;                            // L: longest row in this batch
  std::vector<std::int32_t> items;          // [B, L] input item ids
  std::vector<std::int64_t> times;          // [B, L] input event times
  std::vector<std::int32_t> lengths;        // [B]
  std::vector<std::int32_t> targets;        // train: [B, L] next item (0 = none); eval: [B] held-out item
  std::vector<std::int64_t> target_times;   // same shape as targets
  std::vector<std::int64_t> user_ids;       // [B] raw user ids
  std::vector<std::int64_t> window_starts;  // [B] index of each row's first input event in its user's history
  // Evaluation only: each row's whole history before its target (CSR), so that
  // ranking can exclude items the user has seen.
  std::vector<std::int64_t> seen_offsets;  // [B+1]
  std::vector<std::int32_t> seen_items;

  // What a consumer's preparer attached on the loader's thread (opaque here).
  std::shared_ptr<const BatchPreparation> prepared;

  std::int64_t num_events() const;  // inputs + targets in this batch
};

}  // namespace longrec::data
