// `longrec sweep`: scaling-law sweeps (plan, run, collect).
#include <fmt/format.h>

#include <cstring>
#include <map>

#include "commands.h"
#include "longrec/core/config.h"
#include "longrec/core/error.h"
#include "longrec/sweep/descriptor.h"
#include "longrec/sweep/sweep.h"

namespace longrec::cli {

namespace {

int sweep_plan(int argc, const char* const* argv) {
  sweep::PlanOptions options;
  OptionRegistry r("sweep plan",
                   "Resolves every point of a sweep descriptor into its `longrec train` config, checks it,\n"
                   "counts its parameters and training FLOPs per sample and turns its budget into steps;\n"
                   "writes the plan directory (plan.csv, points/NNN/config.ini).\n"
                   "Example: longrec sweep plan --sweep configs/sweeps/hstu-size.ini --out runs/sweeps/hstu-size",
                   "sweep");
  r.add("sweep", "sweep", &options.descriptor, "sweep descriptor (configs/sweeps/*.ini)", check::existing_file());
  r.add("sweep", "out", &options.out, "plan directory to write");
  r.add("sweep", "flops_batches", &options.flops_batches,
        "training batches of the first epoch the FLOPs per sample are averaged over", check::in_range(1, 100000));
  r.constraint([&] {
    if (options.descriptor.empty()) throw ConfigError("sweep.sweep", "a sweep descriptor is required");
    if (options.out.empty()) throw ConfigError("sweep.out", "the plan directory is required");
  });
  if (!r.parse(argc, argv)) return 0;
  sweep::plan_sweep(options);
  return 0;
}

int sweep_run(int argc, const char* const* argv) {
  sweep::RunOptions options;
  OptionRegistry r("sweep run",
                   "Trains and evaluates points of a plan, each in points/NNN/run: a finished point is skipped,\n"
                   "an interrupted one resumes from its newest checkpoint. Exit 75: stopped by SIGUSR1/SIGTERM\n"
                   "with a checkpoint (run again). Under mpirun/srun every point runs on all the ranks.\n"
                   "Example: longrec sweep run --plan runs/sweeps/hstu-size --all",
                   "sweep");
  r.add("sweep", "plan", &options.plan, "plan directory (from `longrec sweep plan`)");
  r.add("sweep", "point", &options.point, "the point to run (0-based; -1 = none: use --all)",
        check::in_range(-1, static_cast<int>(sweep::kMaxPoints)));
  r.flag("sweep", "all", &options.all, "run every point in order");
  r.add("sweep", "threads", &options.threads, "intra-op threads of each point (0 = the point's train.threads)",
        check::in_range(0, check::kMaxThreads));
  r.constraint([&] {
    if (options.plan.empty()) throw ConfigError("sweep.plan", "the plan directory is required");
  });
  if (!r.parse(argc, argv)) return 0;
  return sweep::run_sweep(options);
}

int sweep_collect(int argc, const char* const* argv) {
  std::string plan;
  OptionRegistry r("sweep collect",
                   "Writes <plan>/results.csv: every point's plan, status (done / running / interrupted /\n"
                   "pending / failed with its error), samples, tokens and FLOPs trained, wall time, final\n"
                   "training loss, validation and test HR@10 / NDCG@10. scripts/sweep_fit.py reads it.\n"
                   "Example: longrec sweep collect --plan runs/sweeps/hstu-size",
                   "sweep");
  r.add("sweep", "plan", &plan, "plan directory");
  r.constraint([&] {
    if (plan.empty()) throw ConfigError("sweep.plan", "the plan directory is required");
  });
  if (!r.parse(argc, argv)) return 0;
  const auto rows = sweep::collect_sweep(plan);
  std::map<std::string, int> by_status;
  fmt::print("{:>5}  {:<12} {:<40} {:>11} {:>9} {:>10} {:>8} {:>8} {:>8}  {}\n", "point", "name", "overrides", "status",
             "steps", "FLOPs", "loss", "val ndcg", "test ndcg", "");
  for (const auto& row : rows) {
    ++by_status[row.status];
    const auto value = [](double v) { return v < 0 ? std::string("-") : fmt::format("{:.4f}", v); };
    fmt::print("{:>5}  {:<12} {:<40} {:>11} {:>9} {:>10} {:>8} {:>8} {:>8}  {}\n", row.point, row.label, row.overrides,
               row.status, row.steps < 0 ? std::string("-") : fmt::format("{}", row.steps),
               row.train_flops < 0 ? std::string("-") : fmt::format("{:.3g}", row.train_flops),
               value(row.final_train_loss), value(row.valid_ndcg10), value(row.test_ndcg10), row.error.substr(0, 120));
  }
  std::string summary;
  for (const auto& [status, n] : by_status) summary += fmt::format("{}{} {}", summary.empty() ? "" : ", ", n, status);
  fmt::print("{} points: {}; wrote {}/results.csv\n", rows.size(), summary, plan);
  return 0;
}

}  // namespace

int run_sweep(int argc, const char* const* argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0) {
    fmt::print(
        "Usage: longrec sweep <action> [options]\n\nActions:\n"
        "  plan     resolve a sweep descriptor's points into a plan directory\n"
        "  run      train and evaluate points of a plan (resumable; --point N or --all)\n"
        "  collect  every point's results into <plan>/results.csv\n"
        "\nA Slurm job array, one task per point: sbatch --array=0-N launch/sweep.sbatch PLAN_DIR\n");
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "plan") == 0) return sweep_plan(argc - 1, argv + 1);
  if (std::strcmp(argv[1], "run") == 0) return sweep_run(argc - 1, argv + 1);
  if (std::strcmp(argv[1], "collect") == 0) return sweep_collect(argc - 1, argv + 1);
  throw ConfigError("sweep", fmt::format("unknown action '{}', expected: plan, run, collect", argv[1]));
}

}  // namespace longrec::cli
