// Scaling-law sweeps (issue 17): plan a descriptor's points, run them
// (resumably, one per call or all), collect their results. Torch-free
// interface for the CLI.
//
// A plan directory:
//   sweep.json                the sweep's name, its descriptor's checksum, the number of points (written last:
//                             a directory without it is no plan)
//   plan.csv                  one row per point: overrides, parameters, FLOPs per sample, planned steps and FLOPs
//   points/NNN/config.ini     the point's resolved `longrec train` config
//   points/NNN/plan.json      the point's planned figures (and its config's checksum)
//   points/NNN/run/           its training run (logs, metrics-rank-*.jsonl, ckpt/)
//   points/NNN/result.json    written when the point is done: validation and test metrics
//   points/NNN/error.txt      the error a failed point ended with
//   results.csv               `sweep collect`
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longrec::sweep {

struct PlanOptions {
  std::string descriptor;  // configs/sweeps/*.ini
  std::string out;         // plan directory
  // FLOPs per sample are averaged over at most this many training batches of the first epoch.
  int flops_batches = 200;
};

// Validates every point (its config as `longrec train` would, its memory
// estimate, its budget), then writes the plan directory. Refuses, naming the
// point and the key, before anything is written; refuses a directory that
// holds another sweep's plan (or anything but a plan). Re-planning the same
// descriptor into its own directory rewrites the plan and keeps the runs.
// Returns the number of points.
int plan_sweep(const PlanOptions& options);

struct RunOptions {
  std::string plan;
  int point = -1;  // one point; -1 with all = true: every point in order
  bool all = false;
  int threads = 0;  // intra-op threads of each point's training (0 = the point's config)
};

// Runs points, each in its own run directory, resuming an interrupted one
// from its newest checkpoint and skipping finished ones. Returns the exit
// code: 0 when the points asked for are done, 75 when a stop signal
// (SIGUSR1/SIGTERM) ended a point with a checkpoint (run again to continue),
// 1 when a point failed (its error is in points/NNN/error.txt; with --all the
// others still run on a single rank). Under mpirun/srun every rank runs the
// same points together.
int run_sweep(const RunOptions& options);

// One row of results.csv.
struct PointResult {
  int point = 0;
  std::string label, overrides, budget_kind, status, error;
  double budget = 0;
  std::int64_t parameters = 0, non_embedding_parameters = 0, planned_steps = 0;
  double flops_per_sample = 0, planned_flops = 0;
  // Measured (from the run's metrics); negative: unknown.
  std::int64_t steps = -1, samples = -1, tokens = -1;
  double train_flops = -1, wall_seconds = -1, final_train_loss = -1;
  double valid_hr10 = -1, valid_ndcg10 = -1, test_hr10 = -1, test_ndcg10 = -1;
};

// Reads every point's state, writes <plan>/results.csv and returns the rows.
std::vector<PointResult> collect_sweep(const std::string& plan);

}  // namespace longrec::sweep
