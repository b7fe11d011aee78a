// Streaming loader: history store -> padded batches, one rank's share.
//
// Every rank computes the same *global* plan for an epoch from the user
// lengths alone (cheap: the offsets): users are cut into chunks of
// `read_users` consecutive users of one part; chunk order is shuffled from
// (seed, epoch); `shuffle_users` worth of chunks form a shuffle buffer whose
// samples are shuffled, grouped by length (so batches pad little) and cut into
// global batches of `batch_size`. Chunk c belongs to rank c % world, and a
// rank's batch is the rows of the global batch that come from its chunks, so
// that each rank reads only its own users by hyperslab, and the union of the
// ranks' batches at step t is the same for every world size. A background
// thread reads and builds batches ahead of the consumer.
//
// The position (epoch, batches handed out) fully determines what comes next:
// restore() resumes exactly, with the same or another world size.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "longrec/data/split.h"

namespace longrec {
class OptionRegistry;
}

namespace longrec::data {

struct LoaderConfig {
  int batch_size = 128;  // global rows per step, over all ranks
  int max_len = 200;     // longest input window (events) fed to the model
  std::string split = "loo";
  // "last": one window per user, the most recent max_len inputs (the HSTU
  // reference); "all": the whole training history tiled into windows.
  std::string windows = "last";
  std::uint64_t seed = 42;
  int shuffle_users = 8192;  // shuffle buffer, in users
  int read_users = 256;      // users per chunk read (one hyperslab)
  int prefetch_batches = 16;
  // Off by default: batches of similar length are cheaper (less padding) but
  // not i.i.d.; on ML-1M they cost ~2 points of NDCG@10 (docs/results.md).
  bool group_by_length = false;
  bool drop_last = false;  // drop the epoch's final partial batch (training)
};

// Registers the [data] keys of LoaderConfig with validation.
void register_loader_options(OptionRegistry& registry, LoaderConfig& config);

// Row-major padded arrays; rows are left-aligned, padding is item 0.
struct Batch {
  bool training = true;           // train batch (targets per position) or eval batch (one target per row)
  std::int64_t global_index = 0;  // which global batch of the epoch this is
  int rows = 0;                   // B: this rank's rows (may be 0 on some ranks)
  int global_rows = 0;            // rows of the global batch over all ranks
  int width = 0;                  // L: longest row in this batch
  std::vector<std::int32_t> items;         // [B, L] input item ids
  std::vector<std::int64_t> times;         // [B, L] input event times
  std::vector<std::int32_t> lengths;       // [B]
  std::vector<std::int32_t> targets;       // train: [B, L] next item (0 = none); eval: [B] held-out item
  std::vector<std::int64_t> target_times;  // same shape as targets
  std::vector<std::int64_t> user_ids;      // [B] raw user ids
  std::vector<std::int64_t> window_starts; // [B] index of each row's first input event in its user's history
  // Evaluation only: each row's whole history before its target (CSR), so that
  // ranking can exclude items the user has seen.
  std::vector<std::int64_t> seen_offsets;  // [B+1]
  std::vector<std::int32_t> seen_items;

  std::int64_t num_events() const;  // inputs + targets in this batch
};

struct LoaderPosition {
  std::int64_t epoch = 0;
  std::int64_t batch = 0;  // global batches already handed out in this epoch
  bool operator==(const LoaderPosition&) const = default;
};

class HistoryLoader {
 public:
  HistoryLoader(const std::filesystem::path& dataset, LoaderConfig config, SplitPart part, int rank = 0,
                int world = 1);
  ~HistoryLoader();
  HistoryLoader(const HistoryLoader&) = delete;
  HistoryLoader& operator=(const HistoryLoader&) = delete;

  // The next batch of the current epoch; nullopt at its end, after which the
  // next call starts the following epoch (training). Rethrows errors of the
  // background reader (e.g. a corrupt chunk) with the file named.
  std::optional<Batch> next();

  LoaderPosition position() const;
  void restore(const LoaderPosition& position);

  std::int64_t batches_per_epoch() const;  // global batches
  std::int64_t samples_per_epoch() const;  // global samples
  std::int64_t rank_users() const;         // users this rank owns
  std::int64_t num_items() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longrec::data
