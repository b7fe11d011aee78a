// `longrec sweep run`: each point trained in its own run directory (resumed
// from its newest checkpoint), then evaluated on the validation and the test
// split; a finished point (result.json) is skipped, a point another process
// is running (its lock) is refused.
#include <fcntl.h>
#include <mpi.h>
#include <sys/file.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "longrec/ckpt/manifest.h"
#include "longrec/core/atomic_file.h"
#include "longrec/core/error.h"
#include "longrec/core/log.h"
#include "longrec/distributed/runtime.h"
#include "longrec/eval/evaluate_checkpoint.h"
#include "longrec/sweep/sweep.h"
#include "longrec/train/trainer.h"
#include "plan_dir.h"

namespace longrec::sweep {

namespace {

// A stop signal outside training (between points, during evaluation): the
// point in hand finishes, the next one does not start. Inside training the
// training loop's own handler takes over (and puts this one back after).
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void note_stop(int signal) { g_stop_signal = signal; }

class SweepSignals {
 public:
  SweepSignals() {
    g_stop_signal = 0;
    usr1_ = std::signal(SIGUSR1, note_stop);
    term_ = std::signal(SIGTERM, note_stop);
  }
  ~SweepSignals() {
    std::signal(SIGUSR1, usr1_);
    std::signal(SIGTERM, term_);
  }
  SweepSignals(const SweepSignals&) = delete;
  SweepSignals& operator=(const SweepSignals&) = delete;

 private:
  void (*usr1_)(int);
  void (*term_)(int);
};

struct Job {
  int rank = 0, world = 1;
};

// Collective under mpirun/srun: whether any rank got a stop signal.
bool any_rank_stopped(const Job& job) {
  int local = g_stop_signal != 0 ? 1 : 0, any = local;
  if (job.world > 1) LONGREC_MPI(MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
  return any != 0;
}

void barrier(const Job& job) {
  if (job.world > 1) LONGREC_MPI(MPI_Barrier(MPI_COMM_WORLD));
}

// Another process holds the point's lock: not a failure of the point.
class PointBusy : public Error {
 public:
  using Error::Error;
};

// An exclusive lock on points/NNN/.lock for as long as the point runs (rank 0):
// two processes never train one point; `sweep collect` sees it as running.
class PointLock {
 public:
  PointLock(const fs::path& dir, int point) {
    const auto path = dir / ".lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw SystemError(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      throw PointBusy(
          fmt::format("sweep point {} is being run by another process (it holds {})", point, path.string()));
    }
  }
  ~PointLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }
  PointLock(const PointLock&) = delete;
  PointLock& operator=(const PointLock&) = delete;

 private:
  int fd_ = -1;
};

enum class Outcome { kDone, kStopped };

nlohmann::json evaluate_part(const TrainJob& job, const fs::path& run_dir, const std::string& part, double& seconds) {
  eval::EvalOptions options;
  options.checkpoint = run_dir.string();
  options.part = part;
  options.threads = job.train.threads;
  options.device = job.train.device;
  options.window_from_checkpoint = true;
  options.protocol = job.train.eval_protocol;  // the point's [eval] keys, as its training evaluated
  const auto result = eval::evaluate_checkpoint(options, job.data);
  seconds += result.seconds;
  log::info("sweep: {} {} users: {}", part, result.users,
            fmt::format("hr@10 {:.4f} ndcg@10 {:.4f}", result.metrics.at("hr@10"), result.metrics.at("ndcg@10")));
  nlohmann::json metrics = result.metrics;
  metrics["users"] = result.users;
  return metrics;
}

Outcome run_point(const fs::path& plan, int point, int threads, const Job& job) {
  const auto pp = read_point_plan(plan, point);
  const auto dir = point_dir(plan, point);
  const auto config = dir / "config.ini";
  if (text_checksum(read_text(config)) != pp.config_checksum) {
    throw DataError(
        fmt::format("{} differs from the config the plan checked (checksum {}): re-run `longrec sweep "
                    "plan` instead of editing a point",
                    config.string(), pp.config_checksum));
  }
  if (fs::exists(dir / "result.json")) {
    log::info("sweep point {} is done ({}): skipped", point, (dir / "result.json").string());
    return Outcome::kDone;
  }
  std::optional<PointLock> lock;
  if (job.rank == 0) {
    lock.emplace(dir, point);
    fs::remove(dir / "error.txt");
  }
  const auto run_dir = point_run_dir(plan, point);
  std::vector<std::string> args{"--config", config.string(), "--train.run_dir=" + run_dir.string(),
                                "--train.resume=auto", "--train.final_eval=false"};
  if (threads > 0) args.push_back(fmt::format("--train.threads={}", threads));
  const auto train_job = parse_train_job(args);
  log::info("sweep point {} ({}{}): {} steps planned, {:.3g} FLOPs", point, pp.label.empty() ? "" : pp.label + ": ",
            pp.overrides, pp.planned_steps, pp.planned_flops);

  // Trained already (stopped during its evaluation)? Then only the evaluation is left.
  const auto checkpoint = ckpt::resolve_checkpoint(run_dir, "auto");
  const bool trained = !checkpoint.empty() && ckpt::read_manifest(checkpoint).trainer.step >= pp.planned_steps;
  if (!trained) {
    const auto result =
        train::run_training(train_job.train, train_job.model, train_job.data, train_job.table, train_job.ini);
    if (result.stopped_by_signal != 0) return Outcome::kStopped;
  }
  if (job.rank == 0) {
    double seconds = 0;
    nlohmann::json result{{"point", point}, {"planned_steps", pp.planned_steps}};
    result["valid"] = evaluate_part(train_job, run_dir, "valid", seconds);
    result["test"] = evaluate_part(train_job, run_dir, "test", seconds);
    result["eval_seconds"] = seconds;
    write_file_atomically(dir / "result.json", [&](std::ostream& o) { o << result.dump(2) << "\n"; });
    log::info("sweep point {} done", point);
  }
  barrier(job);
  return Outcome::kDone;
}

}  // namespace

int run_sweep(const RunOptions& options) {
  const fs::path plan(options.plan);
  const auto info = read_sweep_info(plan);
  if (options.all == (options.point >= 0)) {
    throw ConfigError("sweep.point", "give either --point N or --all");
  }
  if (!options.all && options.point >= info.points) {
    throw ConfigError("sweep.point", fmt::format("got {}, the plan {} has points 0 to {}", options.point, plan.string(),
                                                 info.points - 1));
  }
  Job job;
  if (distributed::launched_by_mpi()) {
    const auto& topology = distributed::MpiRuntime::start().topology();
    job.rank = topology.rank;
    job.world = topology.world;
  }
  if (job.world != info.ranks) {
    log::warn("sweep '{}' was planned for {} rank(s) per point; running on {} (the global batches are the same)",
              info.name, info.ranks, job.world);
  }
  const SweepSignals signals;
  std::vector<int> points;
  if (options.all) {
    for (int p = 0; p < info.points; ++p) points.push_back(p);
  } else {
    points.push_back(options.point);
  }
  int failed = 0;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const int point = points[i];
    if (i > 0 && any_rank_stopped(job)) {
      log::info("sweep: stopped by a signal before point {}; run again to continue", point);
      return 75;
    }
    try {
      if (run_point(plan, point, options.threads, job) == Outcome::kStopped) {
        log::info("sweep point {} stopped by a signal with a checkpoint; run again to resume it", point);
        return 75;
      }
    } catch (const PointBusy& e) {
      if (!options.all || job.world > 1) throw;  // (only rank 0 takes the lock)
      log::info("{}: skipped", e.what());
    } catch (const std::exception& e) {
      // Recorded for `sweep collect`; on one rank the other points still run.
      const auto file = point_dir(plan, point) / "error.txt";
      try {
        write_file_atomically(file, [&](std::ostream& o) {
          o << (job.world > 1 ? fmt::format("rank {}: ", job.rank) : "") << e.what() << "\n";
        });
      } catch (const std::exception& write_error) {
        log::warn("{}", write_error.what());
      }
      if (job.world > 1 || !options.all) throw;
      log::warn("sweep point {} failed: {} (recorded in {})", point, e.what(), file.string());
      ++failed;
    }
  }
  if (failed > 0) {
    log::warn("sweep '{}': {} of {} points failed (`longrec sweep collect --plan {}` lists them)", info.name, failed,
              points.size(), plan.string());
    return 1;
  }
  return 0;
}

}  // namespace longrec::sweep
