#include "longrec/train/model_selection.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

#include "longrec/core/error.h"
#include "longrec/eval/ranking_metrics.h"
#include "longrec/eval/user_ranks.h"

namespace longrec::train {

std::vector<std::string> selectable_metrics(const std::vector<int>& cutoffs) {
  // Whatever the evaluation reports is selectable; nothing it does not report is.
  return eval::metric_names(cutoffs);
}

std::optional<SelectBy> parse_select_by(const std::string& value, const std::vector<int>& cutoffs) {
  if (value.empty() || value == "none") return std::nullopt;
  const auto metrics = selectable_metrics(cutoffs);
  const auto expected =
      fmt::format("expected none or valid.<metric> with <metric> one of {}", fmt::join(metrics, ", "));
  const auto dot = value.find('.');
  if (dot == std::string::npos) throw ConfigError("train.select_by", fmt::format("got '{}', {}", value, expected));
  SelectBy out{value.substr(0, dot), value.substr(dot + 1)};
  if (out.part == "test") {
    throw ConfigError("train.select_by",
                      fmt::format("got '{}': choosing the checkpoint by the test figure would report a test figure "
                                  "chosen on the test set; select by valid.{} (with data.split=last2)",
                                  value, out.metric));
  }
  if (out.part != "valid") {
    throw ConfigError("train.select_by",
                      fmt::format("got '{}': the part '{}' is not valid; {}", value, out.part, expected));
  }
  if (std::find(metrics.begin(), metrics.end(), out.metric) == metrics.end()) {
    throw ConfigError("train.select_by",
                      fmt::format("got '{}': evaluation reports no metric '{}'; {}", value, out.metric, expected));
  }
  return out;
}

ModelSelection::ModelSelection(SelectBy select_by, int patience, ckpt::SelectionState state)
    : select_by_(std::move(select_by)), patience_(patience), state_(std::move(state)) {
  LONGREC_CHECK(patience_ >= 0, "negative patience {}", patience_);
  state_.metric = select_by_.name();
}

ModelSelection::Decision ModelSelection::observe(double value, std::int64_t step, std::int64_t epoch) {
  LONGREC_CHECK(!counted(step), "the evaluation at step {} is already counted (the last was at step {})", step,
                state_.last_eval_step);
  Decision decision;
  state_.last_eval_step = step;
  if (std::isfinite(value) && (state_.best_step < 0 || value > state_.best_value)) {
    state_.best_step = step;
    state_.best_epoch = epoch;
    state_.best_value = value;
    state_.evals_since_best = 0;
    decision.improved = true;
  } else {
    ++state_.evals_since_best;
  }
  decision.stop = patience_used_up();
  return decision;
}

std::string ModelSelection::describe_best() const {
  if (state_.best_step < 0) return fmt::format("{}: no evaluation yet", state_.metric);
  return fmt::format("{} {:.6f} at step {} (epoch {})", state_.metric, state_.best_value, state_.best_step,
                     state_.best_epoch);
}

}  // namespace longrec::train
