// Checkpoints (design section 7):
//   run_dir/ckpt/step-000000123/
//     manifest.json                 format, version, step, epoch, loader position,
//                                   world size, model config, tensor shapes,
//                                   files with their checksums
//     dense.h5                      dense parameters, optimizer and RNG state (rank 0)
//     emb-rank-RRRRR-of-WWWWW.h5    each rank's item rows: global ids + table + optimizer state
//   run_dir/ckpt/LATEST             name of the newest complete checkpoint
//   run_dir/ckpt/BEST               with train.select_by: name of the best checkpoint so far
//                                   (never removed by retention; `--checkpoint RUN/ckpt/BEST`)
// Every rank writes its file into one temporary directory (a file system all
// ranks share); rank 0 writes the rest, fsyncs, renames, updates LATEST (then
// BEST) and keeps the newest `keep` checkpoints, and the best one. A kill at
// any moment leaves a complete checkpoint to resume from: LATEST's, or (resolve_checkpoint) the
// newest step directory that verifies. Loading re-shards rows by id, so a
// checkpoint of W ranks resumes on any number of ranks. The manifest, its
// checks and the choice of checkpoint are in manifest.h (torch-free).
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "longrec/ckpt/manifest.h"
#include "longrec/model/item_table.h"
#include "longrec/model/sequential_recommender.h"

namespace longrec::distributed {
class Communicator;
}

namespace longrec::ckpt {

// Collective: every rank of `comm` calls it.
std::filesystem::path save_checkpoint(const std::filesystem::path& run_dir, const Manifest& manifest,
                                      model::SequentialRecommender& model, torch::optim::Optimizer& optimizer,
                                      model::ItemTable& items, int keep, distributed::Communicator& comm);

// Refuses (ConfigError naming the key) a checkpoint whose model differs from
// `config` or whose item count differs from the dataset's.
void check_compatible(const Manifest& manifest, const model::ModelConfig& config, std::int64_t num_items,
                      const std::filesystem::path& checkpoint);

// Loads everything this process holds (its rows of the item table, by id,
// from whichever rank files have them); nothing is modified unless every
// tensor was read and matched its expected shape. optimizer may be null
// (evaluation).
void load_checkpoint(const std::filesystem::path& checkpoint, const Manifest& manifest,
                     model::SequentialRecommender& model, torch::optim::Optimizer* optimizer, model::ItemTable& items);

// Fault-injection seam for tests only (no option or environment variable of
// longrec reaches it): rank 0 calls `observer(stage, step)` at each stage of
// save_checkpoint: "temporary", "rank-file", "dense", "manifest", "set-aside",
// "renamed", "latest", "best", "cleaned". Null (the default) turns it off.
namespace fault_injection {
using SaveObserver = void (*)(const char* stage, std::int64_t step);
void set_save_observer(SaveObserver observer);
}  // namespace fault_injection

}  // namespace longrec::ckpt
