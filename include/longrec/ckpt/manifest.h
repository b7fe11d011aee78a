// A checkpoint's manifest.json, its LATEST pointer and the choice of the
// checkpoint to resume, torch-free (library longrec_ckpt_manifest: links
// longrec_model_config and longrec_core only), so that tools and fuzz targets
// parse manifests without LibTorch. checkpoint.h (the writer and the tensor
// loader) includes it.
//
// manifest.json (format version 2) is one JSON object:
//   format, version, step, epoch, loader {epoch, batch}, batches_per_epoch,
//   world_size, history_window, num_items, model {...}, config_ini, dataset,
//   tensors {name: shape}, files {name: "crc32:xxxxxxxx"},
//   selection {metric, best_step, best_epoch, best_value, evals_since_best,
//              last_eval_step}: only with train.select_by (optional: older
//              manifests have none),
//   manifest_checksum: "crc32:xxxxxxxx" of the object without this key,
//                      serialised compactly with sorted keys (nlohmann's dump()).
// Version 1 manifests (no manifest_checksum) are refused, naming the version:
// accepting them would let an edited manifest pass by dropping its checksum.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "longrec/data/loader_position.h"
#include "longrec/model/model_config.h"

namespace longrec::ckpt {

inline constexpr const char* kCheckpointFormat = "longrec-checkpoint";
inline constexpr int kCheckpointVersion = 2;
inline constexpr const char* kManifestFile = "manifest.json";
inline constexpr const char* kDenseFile = "dense.h5";
// Beside LATEST in run_dir/ckpt: the name of the best checkpoint's step
// directory (train.select_by), written atomically; retention never removes it.
inline constexpr const char* kBestFile = "BEST";

// Best-checkpoint selection (train.select_by) as it stood at a checkpoint's
// step, so that a resumed run takes the same decisions as an uninterrupted
// one. metric empty: no selection (and every checkpoint written before it
// existed: its manifest has no "selection" key).
struct SelectionState {
  std::string metric;           // "valid.ndcg@10"
  std::int64_t best_step = -1;  // -1: no evaluation yet
  std::int64_t best_epoch = 0;
  double best_value = 0;              // the metric at best_step (higher is better)
  std::int64_t evals_since_best = 0;  // evaluations that did not improve on it since
  std::int64_t last_eval_step = -1;   // the step of the last evaluation counted (-1: none)
  bool operator==(const SelectionState&) const = default;
};

struct TrainerState {
  std::int64_t step = 0;
  std::int64_t epoch = 0;
  data::LoaderPosition loader;
  SelectionState selection;
};

struct Manifest {
  TrainerState trainer;
  // Global batches per epoch of the run: step == loader.epoch * this + loader.batch.
  std::int64_t batches_per_epoch = 0;
  model::ModelConfig model;
  std::int64_t num_items = 0;
  int world_size = 1;
  int history_window = 0;  // data.max_len trained with
  std::string config_ini;
  std::string dataset;
  // File name -> "crc32:xxxxxxxx": what parse_manifest read (every file of a
  // world_size-rank checkpoint, nothing else); the writer fills its own.
  std::map<std::string, std::string> files;
};

// "step-000000123": a committed checkpoint's directory under run_dir/ckpt.
std::string step_directory_name(std::int64_t step);
// "emb-rank-00001-of-00004.h5"
std::string embedding_file_name(int rank, int world);
// Every data file of a checkpoint of `world` ranks: dense.h5, then the rank files.
std::vector<std::string> checkpoint_file_names(int world);

// Parses and validates manifest text; `source` names it in errors (a path).
// Throws DataError("<source>: ...") naming the key on: malformed JSON, another
// format or version, a missing key or one of the wrong type, values out of
// range, a step that is not loader.epoch * batches_per_epoch + loader.batch,
// an epoch that is not loader.epoch (or loader.epoch + 1 after the epoch's
// last batch), `files` not listing exactly the files of a world_size-rank
// checkpoint, and finally a manifest_checksum that does not match the content
// (any other edit). Never touches the file system.
Manifest parse_manifest(const std::string& text, const std::string& source);

// The same JSON object with manifest_checksum (re)computed, as written to
// manifest.json (indented, newline-terminated). DataError if `text` is not a
// JSON object.
std::string seal_manifest(const std::string& text);

// Reads <checkpoint>/manifest.json through parse_manifest, then checks that a
// directory named step-N (or .step-N.old, a checkpoint set aside while the
// same step was saved again) holds step N, and that every listed file is
// there with its checksum; throws DataError naming the file when anything is
// missing, corrupt, edited or of another format.
Manifest read_manifest(const std::filesystem::path& checkpoint);

// Which checkpoint to use. `resume`:
//   "auto": run_dir/ckpt's checkpoint: the directory LATEST names; when LATEST
//     is missing, empty, not a step directory name (e.g. binary) or names a
//     directory that is gone, the newest step directory whose manifest and
//     files verify (logged, with the reason). Empty path (start fresh) only
//     when there is no step directory at all; DataError when step directories
//     exist but none is complete (never start fresh over them).
//   a path: a step directory, or a LATEST file / ckpt directory / run
//     directory, resolved as above (DataError where there is no checkpoint);
//     or a BEST file: the step directory it names (DataError, with the
//     reason, when it is empty, not a step directory name, or names a
//     directory that is gone: no fallback, another checkpoint is not the best).
// A LATEST that names an existing directory is trusted: a corrupt checkpoint
// there is reported by read_manifest, not skipped.
std::filesystem::path resolve_checkpoint(const std::filesystem::path& run_dir, const std::string& resume);

}  // namespace longrec::ckpt
