// A padded batch of histories as tensors: what every backbone consumes.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace longrec::data {
struct Batch;
}

namespace longrec::model {

struct SequenceBatch {
  torch::Tensor items;        // [B, L] int64, 0 = padding (rows left-aligned)
  torch::Tensor times;        // [B, L] int64, event times
  torch::Tensor query_times;  // [B, L] int64, time of the event each position predicts
  torch::Tensor lengths;      // [B] int64
  torch::Tensor valid;        // [B, L] bool, position < length
  torch::Tensor targets;      // train: [B, L] next item (0 = none); eval: [B]
  // [B] one key per sample (user id and where its window starts in the history),
  // the same whichever rank and batch row holds it: seeds per-row random draws
  // so that W ranks draw exactly what one process draws.
  std::vector<std::uint64_t> sample_keys;

  std::int64_t rows() const { return items.size(0); }
  std::int64_t width() const { return items.size(1); }
};

// Rows [begin, end) of a batch (views; targets of either shape).
SequenceBatch slice_rows(const SequenceBatch& batch, std::int64_t begin, std::int64_t end);

// Wraps a loader batch (copies into tensors on `device`).
SequenceBatch to_sequence_batch(const data::Batch& batch, torch::Device device = torch::kCPU);

// An evaluation-style batch of explicit histories (serving): items[r] are
// internal ids, oldest first, cut to the newest `window` events; times[r]
// their times (empty: event e at time e); request_times[r] the time the last
// position predicts for.
SequenceBatch history_batch(const std::vector<std::vector<std::int64_t>>& items,
                            const std::vector<std::vector<std::int64_t>>& times,
                            const std::vector<std::int64_t>& request_times, std::int64_t window);

}  // namespace longrec::model
