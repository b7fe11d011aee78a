// `longrec synth`: synthetic users whose next item depends on events far back.
//
// Items are split into clusters with Zipf popularity inside each. A user has a
// few persistent long-term interests (clusters, with unequal weights, so some
// recur only rarely) and a short-term interest that drifts between
// neighbouring clusters. Each event is drawn from a long-term interest
// (long_term_prob), repeats an item from deep in the user's own history
// (repeat_prob), or follows the short-term drift. A model that sees only the
// recent window loses the rare interests and the deep repeats; one that sees
// the whole history (or a compressed form of it) does not.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "longrec/data/history_store.h"

namespace longrec {
class OptionRegistry;
}

namespace longrec::data {

struct SynthConfig {
  std::string out;
  std::int64_t users = 10000;
  std::int64_t items = 5000;
  int clusters = 100;
  int interests = 4;               // long-term interests per user
  std::int64_t mean_length = 200;  // log-normal history lengths with this mean
  std::int64_t min_length = 5;
  std::int64_t max_length = 10000;
  double long_term_prob = 0.5;
  double repeat_prob = 0.1;
  double switch_prob = 0.1;  // short-term interest moves to a neighbouring cluster
  double zipf = 1.0;         // popularity exponent inside a cluster
  std::uint64_t seed = 1;
  int num_parts = 8;
  bool overwrite = false;
};

void register_synth_options(OptionRegistry& registry, SynthConfig& config);

struct SynthReport {
  StoreMeta meta;
  double seconds = 0;
};

// Generates users one at a time straight into a history store (streaming:
// memory does not grow with the number of events).
SynthReport generate_synthetic(const SynthConfig& config, bool show_progress = false);

}  // namespace longrec::data
