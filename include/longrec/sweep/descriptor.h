// Sweep descriptors (`configs/sweeps/*.ini`): which training runs a sweep is
// made of. Torch-free: `longrec sweep plan` reads them, the checks build
// fuzzes them (fuzz_sweep_descriptor).
//
//   [sweep]
//   name = hstu-size                   # letters, digits, '-', '_', '.'
//   base = ../synth/hstu-demo.ini      # a `longrec train` config, relative to this file
//   budget = flops                     # flops | steps | epochs: what `budgets` counts
//   budgets = 2e12, 6e12, 2e13         # one point per budget (crossed with the rest)
//   ranks = 1                          # ranks each point is meant to run on
//   [set]                              # every point
//   train.eval_every = 0
//   [points]                           # an explicit list, one line per point: label = key=value ...
//   d32-l1 = model.dim=32 model.blocks=1 model.heads=1
//   d64-l2 = model.dim=64 model.blocks=2 model.heads=2
//   [grid]                             # the cartesian product of these values
//   model.seed = 1, 2
//
// Points: every [points] line (or one point without overrides when there is
// no [points] section) x every combination of [grid] (the last key varies
// fastest) x every budget. Keys of [set], [points] and [grid] are `longrec
// train` keys (section.key); their values are checked against that command's
// options when the sweep is planned, where a bad one is refused naming the
// point. Values hold no spaces (a [points] line splits on whitespace) and no
// commas in [grid].
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace longrec::sweep {

using Override = std::pair<std::string, std::string>;  // full key ("model.dim"), value as text

struct GridAxis {
  std::string key;
  std::vector<std::string> values;
};

struct ListedPoint {
  std::string label;
  std::vector<Override> overrides;
};

enum class BudgetKind { kSteps, kEpochs, kFlops };
const char* budget_kind_name(BudgetKind kind);

struct SweepDescriptor {
  std::string path;  // as given; messages name it
  std::string name;
  std::string base;  // the base config, resolved against the descriptor's directory
  BudgetKind budget_kind = BudgetKind::kEpochs;
  std::vector<double> budgets;  // > 0; whole numbers for steps and epochs
  int ranks = 1;
  std::vector<Override> set;
  std::vector<ListedPoint> points;
  std::vector<GridAxis> grid;
  std::string checksum;  // CRC-32 of the descriptor's bytes (hex): a plan directory belongs to one descriptor
};

// One training run of the sweep.
struct SweepPoint {
  int index = 0;
  std::string label;                // the [points] label ("" without a list)
  std::vector<Override> overrides;  // [set], then the listed point's, then the grid's
  std::vector<Override> varying;    // the listed point's and the grid's (what tells points apart)
  double budget = 0;
};

// Parses descriptor text; `path` names it in messages and anchors `base`.
// Throws ConfigError "FILE:LINE: ..." naming the key or section at fault:
// unknown sections and [sweep] keys, a missing required key, duplicate keys,
// an empty [grid] or grid value list, a key that is not section.key, a key set
// in two places, keys the sweep itself sets (train.run_dir, train.resume; the
// budget's train.max_steps / train.epochs), a budget that is not a positive
// finite number (or not whole for steps and epochs).
SweepDescriptor parse_sweep_descriptor(const std::string& text, const std::string& path);
// Reads and parses a descriptor file (SystemError/ConfigError naming it); `base` must exist.
SweepDescriptor read_sweep_descriptor(const std::string& path);

// Every point, in order. Refuses more than kMaxPoints.
constexpr std::int64_t kMaxPoints = 100000;
std::vector<SweepPoint> expand_points(const SweepDescriptor& descriptor);

// "model.dim=64 model.seed=2"
std::string format_overrides(const std::vector<Override>& overrides);

}  // namespace longrec::sweep
