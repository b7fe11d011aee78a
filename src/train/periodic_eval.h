// Evaluation during training: every eval_every epochs and once at the end,
// on the configured split part, logged and recorded in the metrics stream.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>

#include "longrec/data/loader.h"
#include "longrec/eval/protocol.h"
#include "longrec/train/train_config.h"
#include "training_log.h"

namespace longrec::train {

class PeriodicEvaluation {
 public:
  PeriodicEvaluation(const TrainConfig& config, const data::LoaderConfig& data_config, int rank, int world);

  // Whether the end of `epoch` is an evaluation point.
  bool due_after(std::int64_t epoch) const { return config_.eval_every > 0 && epoch % config_.eval_every == 0; }
  // Collective: every rank evaluates its users and gets the metrics of all.
  void run(TrainingSession& session, std::int64_t epoch, std::int64_t step, TrainingLog& log);

 private:
  TrainConfig config_;
  eval::RankingProtocol protocol_;
  data::HistoryLoader loader_;
};

}  // namespace longrec::train
