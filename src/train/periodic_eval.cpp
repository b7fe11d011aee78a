#include "periodic_eval.h"

#include <chrono>

#include "longrec/core/log.h"
#include "longrec/eval/retrieval.h"
#include "longrec/train/model_selection.h"

namespace longrec::train {

namespace {

std::string periodic_part(const TrainConfig& config) {
  const auto select_by = parse_select_by(config.select_by, config.eval_protocol.resolve().cutoffs);
  return select_by ? select_by->part : config.eval_part;
}

}  // namespace

PeriodicEvaluation::PeriodicEvaluation(const TrainConfig& config, const data::LoaderConfig& data_config, int rank,
                                       int world)
    : config_(config),
      periodic_part_(periodic_part(config)),
      protocol_(config.eval_protocol.resolve()),
      periodic_loader_(config.dataset, data_config, data::parse_split_part(periodic_part_), rank, world) {
  if (config.eval_part != periodic_part_) {
    final_loader_ = std::make_unique<data::HistoryLoader>(config.dataset, data_config,
                                                          data::parse_split_part(config.eval_part), rank, world);
  }
}

std::map<std::string, double> PeriodicEvaluation::run(TrainingSession& session, std::int64_t epoch, std::int64_t step,
                                                      TrainingLog& log) {
  return evaluate(periodic_loader_, periodic_part_, "", session, epoch, step, log, {});
}

std::map<std::string, double> PeriodicEvaluation::run_final(TrainingSession& session, std::int64_t epoch,
                                                            std::int64_t step, TrainingLog& log,
                                                            const ckpt::SelectionState* best) {
  auto& loader = final_loader_ ? *final_loader_ : periodic_loader_;
  if (best == nullptr) return evaluate(loader, config_.eval_part, "", session, epoch, step, log, {});
  return evaluate(loader, config_.eval_part,
                  fmt::format(" at the best checkpoint ({} {:.6f})", best->metric, best->best_value), session, epoch,
                  step, log,
                  {{"best_step", static_cast<double>(best->best_step)}, {"selected_value", best->best_value}});
}

std::map<std::string, double> PeriodicEvaluation::evaluate(data::HistoryLoader& loader, const std::string& part,
                                                           const std::string& what, TrainingSession& session,
                                                           std::int64_t epoch, std::int64_t step, TrainingLog& log,
                                                           std::map<std::string, double> extra) {
  const auto start = std::chrono::steady_clock::now();
  eval::EvaluateOptions options;
  options.long_history = config_.eval_long_history;
  options.protocol = protocol_;
  options.progress_label = fmt::format("eval {}", part);
  const auto result =
      eval::evaluate(session.model(), session.items(), loader, session.device(), options, &session.comm());
  auto values = result.values();
  log::info("eval {}{} epoch {} step {} ({} users, {:.1f} s): {}", part, what, epoch, step, result.all.count(),
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
            eval::format_metrics(result.all.values()));
  if (config_.eval_long_history > 0) {
    log::info("eval {} epoch {} users with > {} events ({}): {}", part, epoch, config_.eval_long_history,
              result.long_histories.count(), eval::format_metrics(result.long_histories.values()));
  }
  auto record = values;
  record["step"] = static_cast<double>(step);
  record["epoch"] = static_cast<double>(epoch);
  record["users"] = static_cast<double>(result.all.count());
  // Which part the record is of, as a number (the stream's fields are numbers): 1 valid, 2 test.
  record["part"] = part == "valid" ? 1.0 : 2.0;
  record.merge(extra);
  log.eval(record);
  return values;
}

}  // namespace longrec::train
