// Training configuration ([train] section) and the entry point of
// `longrec train`. Torch-free: the CLI includes this without LibTorch.
#pragma once

#include <cstdint>
#include <string>

#include "longrec/data/loader.h"
#include "longrec/eval/protocol.h"
#include "longrec/model/model_config.h"
#include "longrec/model/step_memory.h"

namespace longrec {
class OptionRegistry;
}
namespace longrec::train {

struct TrainConfig {
  std::string dataset;  // history store directory (required)
  std::string run_dir = "runs/default";
  int epochs = 101;
  std::int64_t max_steps = 0;  // > 0: stop after this many steps
  double lr = 1e-3;            // dense AdamW
  double beta1 = 0.9, beta2 = 0.98;
  double weight_decay = 0.0;
  std::int64_t warmup_steps = 0;
  std::string schedule = "constant";                 // constant | cosine
  double min_lr_ratio = 0.0;                         // cosine floor, as a fraction of lr
  double clip_grad_norm = 0.0;                       // 0 = off
  std::string sparse_optimizer = "rowwise_adagrad";  // rowwise_adagrad | adam
  double sparse_lr = 0.05;
  std::int64_t log_every = 50;
  int eval_every = 10;                 // epochs; 0 = only at the end
  bool final_eval = true;              // evaluate at the end (`sweep run` evaluates valid and test itself)
  std::string eval_part = "test";      // valid | test
  std::int64_t eval_long_history = 0;  // also report users with longer histories than this (0 = off)
  // Best-checkpoint selection (model_selection.h): none (or empty; off: the
  // last step is reported) or valid.<metric>, e.g. valid.ndcg@10. Periodic
  // evaluations then evaluate valid; the end evaluates eval_part at the best
  // checkpoint (run_dir/ckpt/BEST).
  std::string select_by = "none";
  int early_stop_patience = 0;  // evaluations without improvement of select_by before stopping; 0 = off
  int threads = 0;              // intra-op threads; 0 = all cores
  std::string device = "auto";  // auto | cpu | cuda
  bool bf16 = true;             // bf16 autocast on GPU
  // W ranks: start the next step's item-id exchange while this step computes
  // (the same results either way; off measures what the overlap saves).
  bool route_ahead = true;
  // W ranks (issue 14): seconds a collective may wait for the other ranks
  // before the job ends with a report naming the collective and the silent
  // ranks; until this process's first step completes (loading, resuming,
  // warm-up) the start-up value applies (or the steady one, if larger).
  double collective_timeout = 300;
  double startup_collective_timeout = 900;

  // ckpt
  std::int64_t ckpt_every = 0;  // steps; 0 = only at the end
  int keep_ckpts = 3;
  std::string resume;  // "" | auto | path to a step-NNNNNN directory

  // [eval] cutoffs, exclude_history, target_in_history: the periodic
  // evaluation's protocol, the keys `longrec eval` takes (eval/protocol.h).
  eval::ProtocolOptions eval_protocol;
};

void register_train_options(OptionRegistry& registry, TrainConfig& config);

// The selection keys as the CLI checks them (select_by, patience without
// select_by, select_by without periodic evaluations; ConfigError naming the
// key), and selection under data.split=loo refused ("train.select_by"): there
// the validation target is the test target (a user's last event), so the
// reported test figure would be chosen on the test set. run_training calls it
// too, for callers that bypass the CLI.
void check_selection(const TrainConfig& train, const data::LoaderConfig& data);

// Refuses, before anything is allocated, a step that cannot fit in memory:
// ConfigError naming the keys of its largest terms when the estimate of one
// rank's step exceeds the machine's memory shared by the `local_ranks` ranks
// of this node. num_items = 0 when the dataset is not open yet (the item
// table is left out). Returns the estimate, for the log.
model::StepMemoryEstimate check_training_memory(const TrainConfig& train, const model::ModelConfig& model,
                                                const data::LoaderConfig& data, int world, int local_ranks,
                                                std::int64_t num_items);

}  // namespace longrec::train
