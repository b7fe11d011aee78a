// `longrec synth`: synthetic long-history users -> history store.
#include "commands.h"
#include "longrec/core/config.h"
#include "longrec/core/log.h"
#include "longrec/data/synth.h"

namespace longrec::cli {

int run_synth(int argc, const char* const* argv) {
  data::SynthConfig config;
  OptionRegistry r("synth",
                   "Generates users with persistent long-term interests and short-term drift, so that the next\n"
                   "item depends on events far back, and writes them straight to a history store.\n"
                   "Example: longrec synth --out data/synth --users 100000 --mean_length 1000",
                   "synth");
  data::register_synth_options(r, config);
  if (!r.parse(argc, argv)) return 0;
  const auto report = data::generate_synthetic(config, /*show_progress=*/true);
  const auto& m = report.meta;
  log::info("wrote {}: {} users, {} items, {} events in {} parts ({:.2f} s, {} events/s)", config.out, m.num_users,
            m.num_items, m.num_events, m.num_parts, report.seconds,
            log::human_count(static_cast<double>(m.num_events) / std::max(report.seconds, 1e-9)));
  return 0;
}

}  // namespace longrec::cli
