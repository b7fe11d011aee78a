// The training loop of one rank: every rank runs it in step with the others
// (the same global batches, steps, evaluations and checkpoints); rank 0 alone
// prints, every rank keeps its own log and metrics stream.
#pragma once

#include <cstdint>
#include <string>

#include "longrec/data/loader.h"
#include "longrec/model/model_config.h"
#include "longrec/train/train_config.h"

namespace longrec::distributed {
class Communicator;
}

namespace longrec::train {

struct TrainResult {
  std::int64_t steps = 0;
  int epochs = 0;
  double final_loss = 0;
  double seconds = 0;
  // Non-zero: SIGUSR1 or SIGTERM arrived; the run checkpointed and stopped early.
  int stopped_by_signal = 0;
  // train.select_by: the best checkpoint (best_step -1: none) and whether
  // train.early_stop_patience ended the run before its planned steps.
  std::string selected_by;
  std::int64_t best_step = -1, best_epoch = 0;
  double best_value = 0;
  bool stopped_early = false;
};

// Trains (and evaluates periodically), writing logs, metrics.jsonl and
// checkpoints under run_dir. `resolved_table` / `resolved_ini` describe the
// configuration for the log and the run directory. `comm`: the ranks to train
// with; null: the job's (a world of one, or every rank mpirun/srun started).
TrainResult run_training(const TrainConfig& train, const model::ModelConfig& model, const data::LoaderConfig& data,
                         const std::string& resolved_table, const std::string& resolved_ini,
                         distributed::Communicator* comm = nullptr);

}  // namespace longrec::train
