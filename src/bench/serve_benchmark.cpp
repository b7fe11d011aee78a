#include "longrec/bench/serve_benchmark.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "longrec/core/error.h"
#include "longrec/core/log.h"
#include "longrec/serve/recommender.h"

namespace longrec::bench {

using serve::Recommender;
using serve::UserState;

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// One request thread and its users (histories for recompute, states for the cached mode).
struct Worker {
  std::vector<std::vector<std::int64_t>> histories;
  std::vector<UserState> states;
  std::size_t next_user = 0;
  std::mt19937_64 rng;
  std::vector<double> latencies_ms;
  double timed_s = 0;
};

}  // namespace

double percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())));
  return values[std::min(values.size() - 1, rank == 0 ? 0 : rank - 1)];
}

std::vector<ServeBenchmarkRow> benchmark_serving(const serve::Recommender& recommender,
                                                 const ServeBenchmarkOptions& options) {
  const auto& catalogue = recommender.item_ids();
  if (options.k < 1 || options.k > recommender.num_items()) {
    throw ConfigError("bench.k",
                      fmt::format("got {}, expected 1..{} (the catalogue)", options.k, recommender.num_items()));
  }
  if (options.users_per_thread < 1) {
    throw ConfigError("bench.users_per_thread", fmt::format("got {}, expected >= 1", options.users_per_thread));
  }
  for (const auto history : options.histories) {
    if (history > recommender.max_history()) {
      throw ConfigError("bench.histories",
                        fmt::format("{} events, but the model reads at most {} (its max_len and token groups): "
                                    "recompute would not see the whole history",
                                    history, recommender.max_history()));
    }
  }
  std::vector<ServeBenchmarkRow> rows;
  for (const auto history : options.histories) {
    for (const int threads : options.threads) {
      for (const std::string mode : {"recompute", "state"}) {
        log::info("bench serve: history {}, {} threads, {}", history, threads, mode);
        std::vector<Worker> workers(static_cast<std::size_t>(threads));
        for (int w = 0; w < threads; ++w) {
          auto& worker = workers[static_cast<std::size_t>(w)];
          worker.rng.seed(options.seed * 1'000'003 + static_cast<std::uint64_t>(history * 16 + w));
          for (int u = 0; u < options.users_per_thread; ++u) {
            // One event fewer than the length: the first request's new event completes it.
            std::vector<std::int64_t> events;
            for (std::int64_t e = 0; e + 1 < history; ++e) events.push_back(catalogue[worker.rng() % catalogue.size()]);
            if (mode == "state") {
              worker.states.push_back(recommender.create_state(events));
            } else {
              worker.histories.push_back(std::move(events));
            }
          }
        }
        const auto request = [&](Worker& worker) {
          const auto event = catalogue[worker.rng() % catalogue.size()];
          const auto user = worker.next_user++ % static_cast<std::size_t>(options.users_per_thread);
          const auto start = Clock::now();
          std::size_t answered = 0;
          if (mode == "recompute") {
            auto& events = worker.histories[user];
            events.push_back(event);
            answered = recommender.recommend(events, options.k, false).size();
          } else {
            recommender.append(worker.states[user], {event});
            answered = recommender.recommend(worker.states[user], options.k, false).size();
          }
          LONGREC_CHECK(answered == static_cast<std::size_t>(options.k), "a request was answered short");
          return ms_since(start);
        };
        const auto run = [&](Worker& worker) {
          for (int i = 0; i < options.warmup; ++i) request(worker);
          const auto start = Clock::now();
          while (static_cast<int>(worker.latencies_ms.size()) < options.min_requests ||
                 ms_since(start) < 1000 * options.seconds) {
            worker.latencies_ms.push_back(request(worker));
          }
          worker.timed_s = ms_since(start) / 1000;
        };
        // A failure in a request thread is rethrown here, after every thread ended.
        std::vector<std::exception_ptr> failures(workers.size());
        std::vector<std::thread> pool;
        for (std::size_t w = 0; w < workers.size(); ++w) {
          pool.emplace_back([&, w] {
            try {
              run(workers[w]);
            } catch (...) {
              failures[w] = std::current_exception();
            }
          });
        }
        for (auto& t : pool) t.join();
        for (const auto& failure : failures) {
          if (failure) std::rethrow_exception(failure);
        }

        ServeBenchmarkRow row;
        row.history = history;
        row.threads = threads;
        row.mode = mode;
        std::vector<double> all;
        for (const auto& worker : workers) {
          all.insert(all.end(), worker.latencies_ms.begin(), worker.latencies_ms.end());
          // Threads run side by side: the rates add up.
          row.requests_per_s += static_cast<double>(worker.latencies_ms.size()) / std::max(1e-9, worker.timed_s);
          const auto users = static_cast<double>(options.users_per_thread) * threads;
          for (const auto& state : worker.states) {
            row.state_bytes += static_cast<double>(state.memory_bytes()) / users;
            row.final_events += static_cast<double>(state.events()) / users;
          }
          for (const auto& events : worker.histories) row.final_events += static_cast<double>(events.size()) / users;
        }
        row.requests = static_cast<std::int64_t>(all.size());
        row.p50_ms = percentile(all, 0.50);
        row.p99_ms = percentile(all, 0.99);
        rows.push_back(row);
      }
    }
  }
  return rows;
}

}  // namespace longrec::bench
