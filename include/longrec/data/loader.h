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
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "longrec/data/batch.h"
#include "longrec/data/loader_position.h"
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

class HistoryLoader {
 public:
  HistoryLoader(const std::filesystem::path& dataset, LoaderConfig config, SplitPart part, int rank = 0, int world = 1);
  ~HistoryLoader();
  HistoryLoader(const HistoryLoader&) = delete;
  HistoryLoader& operator=(const HistoryLoader&) = delete;

  // The next batch of the current epoch; nullopt at its end, after which the
  // next call starts the following epoch (training). Rethrows errors of the
  // background reader (e.g. a corrupt chunk) with the file named.
  std::optional<Batch> next();
  // The batch the next call of next() returns, without taking it (waits
  // until it is built); null at the end of an epoch (or when the reader
  // failed: next() then throws). Valid until the next call of next().
  const Batch* peek();

  LoaderPosition position() const;
  void restore(const LoaderPosition& position);

  std::int64_t batches_per_epoch() const;  // global batches
  std::int64_t samples_per_epoch() const;  // global samples
  std::int64_t rank_users() const;         // users this rank owns
  // Evaluation parts: users of the store (all ranks) too short to have a
  // target under the split (fewer than 2 events; fewer than 3 for last2's
  // valid part); they are not scored. 0 for the training part.
  std::int64_t users_without_target() const;
  std::int64_t num_items() const;

  // Work done on the loader's thread for every batch before it is handed out
  // (the trainer's step inputs: negatives and unique item ids), so that it
  // overlaps the consumer's compute. Set before the first next(); an
  // exception it throws comes out of next().
  void set_batch_preparer(std::function<void(Batch&)> preparer);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longrec::data
