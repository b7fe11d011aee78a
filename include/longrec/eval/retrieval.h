// Exact full ranking: the rank of each held-out item among all items, the
// user's excluded history (eval/protocol.h: all of it by default) left out,
// computed in item chunks so that memory stays bounded for 10^6+ items.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "longrec/eval/protocol.h"
#include "longrec/eval/ranking_metrics.h"
#include "longrec/eval/user_ranks.h"
#include "longrec/model/item_vectors.h"

namespace longrec::data {
class HistoryLoader;
struct Batch;
}  // namespace longrec::data
namespace longrec::model {
class SequentialRecommender;
}
namespace longrec::distributed {
class Communicator;
}

namespace longrec::eval {

// queries: [B, D] L2-normalised user vectors; targets: [B] item ids. Row r's
// excluded items are seen_items[seen_offsets[r] .. seen_offsets[r+1]). Returns, per
// row, #{items i in 1..I, i not excluded, i != target : score_i > score_target}
// (a target among the excluded items is still ranked: evaluate() applies
// eval.target_in_history).
// With a communicator of W > 1 ranks (collective; every rank passes the same
// queries), each rank scores the items it holds and the counts are summed.
std::vector<std::int64_t> target_ranks(const torch::Tensor& queries, const torch::Tensor& targets,
                                       const std::vector<std::int64_t>& seen_offsets,
                                       const std::vector<std::int32_t>& seen_items, model::ItemVectors& items,
                                       distributed::Communicator* comm = nullptr, std::int64_t item_chunk = 1 << 16);

// Metrics of all users, and of the slice whose whole history (all events
// before the held-out one) is longer than `long_history` events.
struct Evaluation {
  RankingMetrics all, long_histories;
  std::int64_t long_history = 0;  // 0: no slice
  // Users whose target was among their excluded events (a repeat), however
  // they were scored; those of them that were not scored (target_in_history = skip).
  std::int64_t repeat_targets = 0, skipped_users = 0;
  // Every scored user's rank, in loader order (only when asked: keep_user_ranks).
  std::vector<UserRank> user_ranks;
  // all.values(), plus "hist>N/<metric>" and "hist>N/users" for the slice.
  std::map<std::string, double> values() const;
};

struct EvaluateOptions {
  std::int64_t long_history = 0;  // also the slice of users with longer histories (0 = off)
  bool keep_user_ranks = false;
  RankingProtocol protocol;  // cutoffs, which earlier events are excluded, repeats (eval/protocol.h)
  // Progress of the pass over users: a bar on a terminal, else a log line at
  // most every progress_log_seconds (0: none); "" = no progress at all.
  std::string progress_label = "eval";
  double progress_log_seconds = 30;
};

// The candidates each row excludes under `policy` (CSR over rows, ids as
// stored): all: the row's whole history before its target (batch.seen_*);
// window: the row's input window (batch.items, the first lengths[r] of row r);
// none: nothing.
void excluded_items(const data::Batch& batch, HistoryExclusion policy, std::vector<std::int64_t>& offsets,
                    std::vector<std::int32_t>& items);

// Runs the model over every batch of an evaluation loader (one pass). With a
// communicator of W > 1 ranks (collective): each rank's loader holds its own
// users; the query vectors, targets and excluded items of a global batch are
// all-gathered, every rank scores its shard of the items, and the counts are
// summed, so that every rank returns the metrics of all users (and, with
// keep_user_ranks, every user's rank). Every rank must pass the same options.
Evaluation evaluate(model::SequentialRecommender& model, model::ItemVectors& items, data::HistoryLoader& loader,
                    torch::Device device, const EvaluateOptions& options, distributed::Communicator* comm = nullptr);
// The default protocol, no progress output (tests, tools).
Evaluation evaluate(model::SequentialRecommender& model, model::ItemVectors& items, data::HistoryLoader& loader,
                    torch::Device device, std::int64_t long_history = 0, distributed::Communicator* comm = nullptr,
                    bool keep_user_ranks = false);

}  // namespace longrec::eval
