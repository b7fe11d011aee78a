// Evaluation during training: every eval_every epochs and once at the end,
// logged and recorded in the metrics stream. Periodic evaluations evaluate
// select_by's part (valid) when a checkpoint is being selected, else
// eval_part; the end evaluates eval_part (with selection: at the best
// checkpoint).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "longrec/ckpt/manifest.h"
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
  // Collective: every rank evaluates its users on the periodic part and gets
  // the metrics of all (the same values on every rank: each ranks the whole
  // global batch, see eval::evaluate).
  std::map<std::string, double> run(TrainingSession& session, std::int64_t epoch, std::int64_t step, TrainingLog& log);
  // Collective: eval_part at the end. `best`: the session holds the best
  // checkpoint's weights (step and epoch are its own); the record names it.
  std::map<std::string, double> run_final(TrainingSession& session, std::int64_t epoch, std::int64_t step,
                                          TrainingLog& log, const ckpt::SelectionState* best = nullptr);

 private:
  std::map<std::string, double> evaluate(data::HistoryLoader& loader, const std::string& part, const std::string& what,
                                         TrainingSession& session, std::int64_t epoch, std::int64_t step,
                                         TrainingLog& log, std::map<std::string, double> extra);

  TrainConfig config_;
  std::string periodic_part_;
  eval::RankingProtocol protocol_;
  data::HistoryLoader periodic_loader_;
  std::unique_ptr<data::HistoryLoader> final_loader_;  // only when eval_part differs from the periodic part
};

}  // namespace longrec::train
