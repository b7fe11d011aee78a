#include "longrec/bench/token_benchmark.h"

#include <algorithm>
#include <chrono>

#include "longrec/core/error.h"
#include "longrec/core/log.h"
#include "longrec/core/rng.h"
#include "longrec/data/loader.h"
#include "longrec/model/step_memory.h"
#include "longrec/model/user_state.h"
#include "longrec/train/training_session.h"

namespace longrec::bench {

using train::TrainConfig;
using train::TrainingSession;

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// `rows` random histories of `length` events (times one apart), every
// position supervised by the next event.
data::Batch random_batch(std::int64_t rows, std::int64_t length, std::int64_t items, std::uint64_t seed) {
  Rng rng(seed);
  data::Batch b;
  b.rows = b.global_rows = static_cast<int>(rows);
  b.width = static_cast<int>(length);
  const auto n = static_cast<std::size_t>(rows * length);
  b.items.resize(n);
  b.targets.resize(n);
  b.times.resize(n);
  b.target_times.resize(n);
  for (std::int64_t r = 0; r < rows; ++r) {
    std::vector<std::int32_t> history(static_cast<std::size_t>(length + 1));
    for (auto& item : history) item = static_cast<std::int32_t>(1 + rng.uniform(static_cast<std::uint64_t>(items)));
    for (std::int64_t i = 0; i < length; ++i) {
      const auto k = static_cast<std::size_t>(r * length + i);
      b.items[k] = history[static_cast<std::size_t>(i)];
      b.targets[k] = history[static_cast<std::size_t>(i + 1)];
      b.times[k] = i;
      b.target_times[k] = i + 1;
    }
  }
  b.lengths.assign(static_cast<std::size_t>(rows), static_cast<std::int32_t>(length));
  return b;
}

struct StepCost {
  double gflop = 0, ms = 0;
};

StepCost time_training(const model::ModelConfig& config, const data::Batch& batch, std::int64_t items, int reps) {
  TrainConfig train;
  TrainingSession session(train, config, items, torch::kCPU);
  session.step(batch, 0, 1.0);  // warm-up (allocations, first-touch)
  std::vector<double> ms;
  StepCost cost;
  for (int r = 0; r < reps; ++r) {
    const auto start = Clock::now();
    const auto stats = session.step(batch, r + 1, 1.0);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    cost.gflop = stats.flops / 1e9;
  }
  cost.ms = median(ms);
  return cost;
}

}  // namespace

TokenBenchmark benchmark_tokens(const model::ModelConfig& given, const TokenBenchmarkOptions& options) {
  // hllm: the user LLM alone, over learned item rows (no item LLM): personalization tokens change
  // what the user LLM attends to; the item LLM's cost per item does not depend on the history.
  auto base = given;
  base.hllm.vocab_size = 0;
  if (options.threads > 0) at::set_num_threads(options.threads);
  const auto& pt = base.personalization;
  if (!pt.enabled() || !pt.groups.empty()) {
    throw ConfigError("personalization.segment_len",
                      "bench tokens needs a uniform token layout (segment_len > 0, no explicit groups)");
  }
  // Every length before the first is timed: a step that cannot fit is refused by its keys.
  for (const auto history : options.histories) {
    auto full = base;
    full.personalization = {};
    full.max_len = static_cast<int>(history);
    model::StepShape shape;
    shape.batch_size = std::max<std::int64_t>(1, options.events_per_step / history);
    shape.window = history;
    shape.num_items = options.items;
    model::check_step_memory(model::estimate_step_memory(full, shape), model::machine_memory_bytes());
  }
  TokenBenchmark result;
  for (const auto history : options.histories) {
    if (history <= pt.recent_window) {
      throw ConfigError("bench.histories",
                        fmt::format("history {} is not longer than the recent window {}", history, pt.recent_window));
    }
    auto full = base;
    full.personalization = {};
    full.max_len = static_cast<int>(history);
    auto tokens = base;
    tokens.personalization.max_groups =
        static_cast<int>((history - pt.recent_window + pt.segment_len - 1) / pt.segment_len);
    tokens.personalization.path = "block";
    tokens.max_len = static_cast<int>(model::max_interleaved_length(tokens.personalization, history));
    model::validate_model_config(full);
    model::validate_model_config(tokens);
    result.full_model = full.describe();
    result.tokens_model =
        fmt::format("{} (S={}, K={}, R={})", tokens.describe(), pt.segment_len, pt.tokens_per_group, pt.recent_window);

    TokenCostRow row;
    row.history = history;
    row.rows = std::max<std::int64_t>(1, options.events_per_step / history);
    const auto batch = random_batch(row.rows, history, options.items, static_cast<std::uint64_t>(history));
    log::info("bench tokens: history {} ({} rows per step)", history, row.rows);
    const auto full_cost = time_training(full, batch, options.items, options.reps);
    const auto token_cost = time_training(tokens, batch, options.items, options.reps);
    row.full_gflop = full_cost.gflop;
    row.full_ms = full_cost.ms;
    row.tokens_gflop = token_cost.gflop;
    row.tokens_ms = token_cost.ms;

    // Serving one user: recompute the whole history vs score a cached state.
    torch::NoGradGuard no_grad;
    const auto user = random_batch(1, history, options.items, 7 + static_cast<std::uint64_t>(history));
    data::Batch eval_batch = user;
    eval_batch.training = false;
    eval_batch.targets = {user.targets.back()};
    eval_batch.target_times = {user.target_times.back()};
    TrainConfig train;
    TrainingSession full_session(train, full, options.items, torch::kCPU);
    full_session.model().eval();
    const auto sequence = model::to_sequence_batch(eval_batch);
    TrainingSession token_session(train, tokens, options.items, torch::kCPU);
    model::UserStateEncoder encoder(token_session.model(),
                                    dynamic_cast<model::LocalItemTable&>(token_session.items()).weight());
    std::vector<std::int64_t> items(user.items.begin(), user.items.end()), times(user.times.begin(), user.times.end());
    const auto state = encoder.compress(items, times);
    std::vector<double> full_ms, state_ms;
    for (int r = 0; r <= options.serving_requests; ++r) {
      auto start = Clock::now();
      auto vector = model::last_position_vectors(full_session.model(), full_session.items(), sequence);
      const double a = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      start = Clock::now();
      auto from_state = encoder.score(state, history);
      const double b = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      if (r == 0) continue;  // warm-up
      full_ms.push_back(a);
      state_ms.push_back(b);
    }
    row.serve_full_ms = median(full_ms);
    row.serve_state_ms = median(state_ms);
    result.rows.push_back(row);
  }
  return result;
}

}  // namespace longrec::bench
