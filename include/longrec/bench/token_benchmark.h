// `longrec bench tokens`: what personalization tokens save, measured side by
// side in one run on random histories (no dataset): training-step FLOPs and
// time of full-sequence attention vs the token block path at growing history
// lengths, and serving latency from a cached UserState vs recomputing the
// full history. Torch-free interface for the CLI.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "longrec/model/model_config.h"

namespace longrec::bench {

struct TokenBenchmarkOptions {
  std::vector<std::int64_t> histories{256, 512, 1024, 2048, 4096, 8192};
  std::int64_t events_per_step = 8192;  // rows per step = max(1, events_per_step / history)
  std::int64_t items = 10000;           // catalogue of the random histories
  int reps = 3;                         // timed repetitions (median reported), after one warm-up
  int serving_requests = 20;            // timed requests per history length
  int threads = 0;                      // intra-op threads (0 = all cores)
};

struct TokenCostRow {
  std::int64_t history = 0, rows = 0;
  double full_gflop = 0, tokens_gflop = 0;       // training FLOPs of one step
  double full_ms = 0, tokens_ms = 0;             // median step time
  double serve_full_ms = 0, serve_state_ms = 0;  // median request latency (one user)
};

struct TokenBenchmark {
  std::string full_model, tokens_model;
  std::vector<TokenCostRow> rows;
};

// model: the backbone and the personalization layout (segment_len,
// tokens_per_group, recent_window); max_len and max_groups are sized per
// history length.
TokenBenchmark benchmark_tokens(const model::ModelConfig& model, const TokenBenchmarkOptions& options);

}  // namespace longrec::bench
