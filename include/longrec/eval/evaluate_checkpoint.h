// `longrec eval`: load a checkpoint and rank the held-out items of a split.
// Torch-free interface for the CLI.
#pragma once

#include <map>
#include <set>
#include <string>

#include "longrec/data/loader.h"
#include "longrec/eval/protocol.h"

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
  // The [eval] protocol keys (eval/protocol.h). Those named in
  // protocol_from_checkpoint ("eval.cutoffs", "eval.exclude_history",
  // "eval.target_in_history") take the checkpoint's training value when it
  // recorded one: `longrec eval` does so for every key not given.
  ProtocolOptions protocol;
  std::set<std::string> protocol_from_checkpoint;
  // Progress off a terminal: a log line at most this often (0 = none).
  double progress_log_seconds = 30;
};

struct EvalResult {
  std::map<std::string, double> metrics;
  std::int64_t users = 0;
  std::int64_t users_without_target = 0;  // too short for the split: not scored
  std::string checkpoint;
  std::string split;                // the protocol the users were split by (loo | last2)
  RankingProtocol protocol;         // what was excluded and reported
  std::int64_t items = 0;           // the catalogue ranked (items 1..I)
  std::int64_t repeat_targets = 0;  // users whose target was among their excluded events
  std::int64_t skipped_users = 0;   // of those, not scored (eval.target_in_history = skip)
  double seconds = 0;
};

EvalResult evaluate_checkpoint(const EvalOptions& options, const data::LoaderConfig& data);

}  // namespace longrec::eval
