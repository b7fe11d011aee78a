// `longrec eval`: load a checkpoint and rank the held-out items of a split.
// Torch-free interface for the CLI.
#pragma once

#include <map>
#include <string>

#include "longrec/data/loader.h"

namespace longrec::eval {

struct EvalOptions {
  std::string checkpoint;  // step directory, ckpt directory, LATEST file or run directory
  std::string dataset;     // default: the dataset the checkpoint was trained on
  std::string part = "test";
  int threads = 0;
  std::string device = "auto";
  std::string output;             // optional JSONL file the metrics are appended to
  std::int64_t long_history = 0;  // also report users with longer histories (0 = off)
  std::string ranks;              // optional TSV of every user's rank (eval/user_ranks.h), for `longrec compare`
  // Use the checkpoint's training data.max_len (its config) instead of the
  // loader config's: `longrec eval` does unless --data.max_len is given.
  bool window_from_checkpoint = false;
  // Use the checkpoint's training data.split (loo | last2) instead of the
  // loader config's: `longrec eval` does unless --data.split is given, so that
  // "valid" of a model trained with last2 is its validation event, not its test one.
  bool split_from_checkpoint = false;
};

struct EvalResult {
  std::map<std::string, double> metrics;
  std::int64_t users = 0;
  std::int64_t users_without_target = 0;  // too short for the split: not scored
  std::string checkpoint;
  std::string split;  // the protocol the users were split by (loo | last2)
  double seconds = 0;
};

EvalResult evaluate_checkpoint(const EvalOptions& options, const data::LoaderConfig& data);

}  // namespace longrec::eval
