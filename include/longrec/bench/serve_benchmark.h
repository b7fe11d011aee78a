// `longrec bench serve`: what a request costs a Recommender, side by side in
// one run: (a) recompute from the whole history vs (b) a cached UserState,
// per history length and number of request threads. A request is one new
// event for a user followed by a top-k (what a serving system does when an
// event arrives): (a) recommends from the user's history with the event
// appended, (b) appends the event to the user's state (compressing a segment
// when one leaves the recent window) and recommends from the state. Each
// thread serves its own users round robin, all starting at the same length,
// so that histories grow alike in both modes and only a little in a cell.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longrec::serve {
class Recommender;
}

namespace longrec::bench {

struct ServeBenchmarkOptions {
  std::vector<std::int64_t> histories{200, 1000, 4000};
  std::vector<int> threads{1, 2};  // concurrent request threads (each with the recommender's intra-op threads)
  double seconds = 3.0;            // timed per cell (at least min_requests per thread)
  int min_requests = 5;
  int warmup = 2;  // untimed requests per thread first
  int k = 10;
  int users_per_thread = 32;
  std::uint64_t seed = 1;
};

struct ServeBenchmarkRow {
  std::int64_t history = 0;
  int threads = 0;
  std::string mode;  // "recompute" or "state"
  std::int64_t requests = 0;
  double requests_per_s = 0, p50_ms = 0, p99_ms = 0;
  double state_bytes = 0;   // mean bytes of a user's state at the end (state mode)
  double final_events = 0;  // mean events per user at the end (the length grew by the requests)
};

std::vector<ServeBenchmarkRow> benchmark_serving(const serve::Recommender& recommender,
                                                 const ServeBenchmarkOptions& options);

// Nearest-rank percentile (q in [0, 1]) of unsorted values; 0 for none.
double percentile(std::vector<double> values, double q);

}  // namespace longrec::bench
