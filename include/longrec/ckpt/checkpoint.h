// Checkpoints (design section 7):
//   run_dir/ckpt/step-000000123/
//     manifest.json                 format, version, step, epoch, loader position,
//                                   world size, model config, tensor shapes,
//                                   files with their checksums
//     dense.h5                      dense parameters, optimizer and RNG state (rank 0)
//     emb-rank-RRRRR-of-WWWWW.h5    each rank's item rows: global ids + table + optimizer state
//   run_dir/ckpt/LATEST             name of the newest complete checkpoint
// Every rank writes its file into one temporary directory (a file system all
// ranks share); rank 0 writes the rest, fsyncs, renames, updates LATEST last
// and keeps the newest `keep` checkpoints. Loading re-shards rows by id, so a
// checkpoint of W ranks resumes on any number of ranks.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "longrec/data/loader_position.h"
#include "longrec/model/item_table.h"
#include "longrec/model/model_config.h"
#include "longrec/model/sequential_recommender.h"

namespace longrec::distributed {
class Communicator;
}

namespace longrec::ckpt {

inline constexpr const char* kCheckpointFormat = "longrec-checkpoint";
inline constexpr int kCheckpointVersion = 1;

struct TrainerState {
  std::int64_t step = 0;
  std::int64_t epoch = 0;
  data::LoaderPosition loader;
};

struct Manifest {
  TrainerState trainer;
  model::ModelConfig model;
  std::int64_t num_items = 0;
  int world_size = 1;
  int history_window = 0;  // data.max_len trained with (0: not recorded, older checkpoints)
  std::string config_ini;
  std::string dataset;
};

// Collective: every rank of `comm` calls it.
std::filesystem::path save_checkpoint(const std::filesystem::path& run_dir, const Manifest& manifest,
                                      model::SequentialRecommender& model, torch::optim::Optimizer& optimizer,
                                      model::ItemTable& items, int keep, distributed::Communicator& comm);

// "auto": the checkpoint LATEST names under run_dir/ckpt (empty path if none);
// otherwise the given directory (or a LATEST file / ckpt directory that names one).
std::filesystem::path resolve_checkpoint(const std::filesystem::path& run_dir, const std::string& resume);

// Reads manifest.json and verifies every file's checksum; throws DataError
// naming the file when anything is missing, corrupt or of another format.
Manifest read_manifest(const std::filesystem::path& checkpoint);

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

}  // namespace longrec::ckpt
