// Best-checkpoint selection and early stopping (issue 18, item 5):
// train.select_by = "<part>.<metric>" (e.g. valid.ndcg@10) picks, at each
// periodic evaluation, whether this is the best checkpoint so far;
// train.early_stop_patience = N stops the run after N evaluations in a row
// that did not improve on it. Torch-free: the decisions are a pure function
// of the sequence of metric values, and their state travels in checkpoints
// (ckpt::SelectionState), so a resumed run decides as an uninterrupted one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "longrec/ckpt/manifest.h"
#include "longrec/eval/ranking_metrics.h"

namespace longrec::train {

struct SelectBy {
  std::string part;    // "valid"
  std::string metric;  // "ndcg@10": a key of the metrics evaluation reports
  std::string name() const { return part + "." + metric; }
};

// The metrics select_by may name: those an evaluation with these cutoffs
// (eval.cutoffs) reports: hr@K..., ndcg@K..., mrr, in its order.
std::vector<std::string> selectable_metrics(const std::vector<int>& cutoffs = eval::default_cutoffs());

// "" or "none": off (nullopt). Otherwise "valid.<metric>"; ConfigError
// ("train.select_by") naming the value when the part is not valid (test would
// choose the checkpoint by the figure it then reports; train has no held-out
// event) or the metric is not one of selectable_metrics(cutoffs) (listed).
std::optional<SelectBy> parse_select_by(const std::string& value,
                                        const std::vector<int>& cutoffs = eval::default_cutoffs());

class ModelSelection {
 public:
  struct Decision {
    bool improved = false;  // this evaluation is the new best: keep its checkpoint
    bool stop = false;      // patience used up: stop training
  };

  // patience: evaluations without improvement before stopping (0: never).
  // state: the resumed checkpoint's (for this metric), or a fresh one.
  ModelSelection(SelectBy select_by, int patience, ckpt::SelectionState state);

  // One evaluation's value of the metric at (step, epoch). Higher is better;
  // a tie or a non-finite value does not improve.
  Decision observe(double value, std::int64_t step, std::int64_t epoch);
  // Whether the evaluation at `step` is already in the state (a run resumed
  // from a checkpoint written after it must not count it twice).
  bool counted(std::int64_t step) const { return state_.last_eval_step >= step; }
  bool patience_used_up() const { return patience_ > 0 && state_.evals_since_best >= patience_; }

  const SelectBy& select_by() const { return select_by_; }
  int patience() const { return patience_; }
  const ckpt::SelectionState& state() const { return state_; }
  // "valid.ndcg@10 0.1234 at step 200 (epoch 4)" or "valid.ndcg@10: no evaluation yet".
  std::string describe_best() const;

 private:
  SelectBy select_by_;
  int patience_;
  ckpt::SelectionState state_;
};

}  // namespace longrec::train
