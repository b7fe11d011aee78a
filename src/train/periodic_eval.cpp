#include "periodic_eval.h"

#include <chrono>

#include "longrec/core/log.h"
#include "longrec/eval/retrieval.h"

namespace longrec::train {

PeriodicEvaluation::PeriodicEvaluation(const TrainConfig& config, const data::LoaderConfig& data_config, int rank,
                                       int world)
    : config_(config),
      protocol_(config.eval_protocol.resolve()),
      loader_(config.dataset, data_config, data::parse_split_part(config.eval_part), rank, world) {}

void PeriodicEvaluation::run(TrainingSession& session, std::int64_t epoch, std::int64_t step, TrainingLog& log) {
  const auto start = std::chrono::steady_clock::now();
  eval::EvaluateOptions options;
  options.long_history = config_.eval_long_history;
  options.protocol = protocol_;
  options.progress_label = fmt::format("eval {}", config_.eval_part);
  const auto result =
      eval::evaluate(session.model(), session.items(), loader_, session.device(), options, &session.comm());
  auto values = result.values();
  log::info("eval {} epoch {} step {} ({} users, {:.1f} s): {}", config_.eval_part, epoch, step, result.all.count(),
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
            eval::format_metrics(result.all.values()));
  if (config_.eval_long_history > 0) {
    log::info("eval {} epoch {} users with > {} events ({}): {}", config_.eval_part, epoch, config_.eval_long_history,
              result.long_histories.count(), eval::format_metrics(result.long_histories.values()));
  }
  values["step"] = static_cast<double>(step);
  values["epoch"] = static_cast<double>(epoch);
  values["users"] = static_cast<double>(result.all.count());
  log.eval(values);
}

}  // namespace longrec::train
