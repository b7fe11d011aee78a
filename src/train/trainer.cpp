// The training loop of one rank: every rank runs it in step with the others
// (the same global batches, steps, evaluations and checkpoints); rank 0
// alone prints, every rank keeps its own log and metrics stream.
#include <unistd.h>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <chrono>
#include <csignal>
#include <cmath>
#include <filesystem>

#include "longrec/ckpt/checkpoint.h"
#include "longrec/core/error.h"
#include "longrec/core/log.h"
#include "longrec/core/rng.h"
#include "longrec/data/history_store.h"
#include "longrec/dist/communicator.h"
#include "longrec/dist/runtime.h"
#include "longrec/eval/retrieval.h"
#include "longrec/model/sequential_recommender.h"
#include "longrec/train/lr_schedule.h"
#include "longrec/core/metrics_log.h"
#include "longrec/train/peak_flops.h"
#include "longrec/train/train_config.h"
#include "longrec/train/training_session.h"

namespace longrec::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// SIGUSR1 (Slurm's warning before the time limit) or SIGTERM: finish the step,
// checkpoint, stop. Set by the handler, read by the loop.
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void request_stop(int signal) { g_stop_signal = signal; }

// Installs the handlers for one training run and puts the old ones back after.
class StopSignals {
 public:
  StopSignals() {
    g_stop_signal = 0;
    previous_usr1_ = std::signal(SIGUSR1, request_stop);
    previous_term_ = std::signal(SIGTERM, request_stop);
  }
  ~StopSignals() {
    std::signal(SIGUSR1, previous_usr1_);
    std::signal(SIGTERM, previous_term_);
  }

 private:
  void (*previous_usr1_)(int);
  void (*previous_term_)(int);
};

std::string format_duration(double seconds) {
  const auto s = static_cast<std::int64_t>(seconds);
  return s >= 3600 ? fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60) : fmt::format("{}m{:02d}s", s / 60, s % 60);
}

}  // namespace

TrainResult run_training(const TrainConfig& config, const model::ModelConfig& model_config,
                         const data::LoaderConfig& data_config, const std::string& resolved_table,
                         const std::string& resolved_ini, dist::Communicator* job_comm) {
  model::check_model_fits_history(model_config.max_len, model_config.personalization, data_config.max_len);
  if (config.threads > 0) at::set_num_threads(config.threads);
  // The node-local rank picks the GPU.
  const int local_rank = job_comm != nullptr ? job_comm->topology().local_rank : dist::job_local_rank();
  const torch::Device device = pick_device(config.device, local_rank);
  std::unique_ptr<dist::Communicator> own_comm;
  if (job_comm == nullptr) own_comm = dist::make_job_communicator(device);
  dist::Communicator& comm = job_comm != nullptr ? *job_comm : *own_comm;
  const int rank = comm.rank(), world = comm.world();
  log::set_rank(rank);
  fs::create_directories(config.run_dir);
  log::set_file(fs::path(config.run_dir) / fmt::format("train-rank-{:05d}.log", rank));
  log::info("longrec train: {} on {}, {} intra-op threads; rank {} of {} (pid {}, {} backend)",
            model_config.describe(), device.str(), at::get_num_threads(), rank, world, ::getpid(), comm.backend());
  log::info("resolved config:\n{}", resolved_table);
  if (rank == 0) {
    std::ofstream ini(fs::path(config.run_dir) / "config.ini");
    ini << resolved_ini;
  }

  // Each rank streams only its own users; the global batches are the same for any world size.
  data::HistoryLoader train_loader(config.dataset, data_config, data::SplitPart::Train, rank, world);
  data::HistoryLoader eval_loader(config.dataset, data_config, data::parse_split_part(config.eval_part), rank, world);
  const std::int64_t num_items = train_loader.num_items();

  TrainingSession session(config, model_config, num_items, device, &comm);
  auto& model = session.model();
  auto& items = session.items();
  auto& optimizer = session.optimizer();

  ckpt::Manifest manifest;
  manifest.model = model_config;
  manifest.num_items = num_items;
  manifest.history_window = data_config.max_len;
  manifest.config_ini = resolved_ini;
  manifest.dataset = config.dataset;
  ckpt::TrainerState& state = manifest.trainer;
  if (!config.resume.empty()) {
    const fs::path checkpoint = ckpt::resolve_checkpoint(config.run_dir, config.resume);
    if (checkpoint.empty()) {
      log::info("resume=auto: no checkpoint in {}, starting fresh", (fs::path(config.run_dir) / "ckpt").string());
    } else {
      const auto loaded = ckpt::read_manifest(checkpoint);
      ckpt::check_compatible(loaded, model_config, num_items, checkpoint);
      ckpt::load_checkpoint(checkpoint, loaded, model, &optimizer, items);
      state = loaded.trainer;
      log::info("resumed from {} at step {} (epoch {}, batch {})", checkpoint.string(), state.step,
                state.loader.epoch, state.loader.batch);
    }
  }
  train_loader.restore(state.loader);

  const std::int64_t per_epoch = train_loader.batches_per_epoch();
  const std::int64_t planned = config.max_steps > 0 ? std::min<std::int64_t>(config.max_steps, per_epoch * config.epochs)
                                                    : per_epoch * config.epochs;
  const double peak = measure_matmul_peak_flops(device);
  log::info("{} users on this rank, {} items; {} batches per epoch, {} steps planned; matmul peak {:.1f} GFLOP/s",
            train_loader.rank_users(), num_items, per_epoch, planned, peak / 1e9);
  // Every rank's stream: the step figures are the global batch's (the same on
  // every rank), the communication time is the rank's own.
  MetricsLog metrics(fs::path(config.run_dir) / fmt::format("metrics-rank-{:05d}.jsonl", rank));

  const auto save = [&] {
    const auto path =
        ckpt::save_checkpoint(config.run_dir, manifest, model, optimizer, items, config.keep_ckpts, comm);
    log::info("checkpoint {}", path.string());
  };
  const auto run_eval = [&](std::int64_t epoch) {
    const auto start = Clock::now();
    const auto result = eval::evaluate(model, items, eval_loader, device, config.eval_long_history, &comm);
    auto values = result.values();
    log::info("eval {} epoch {} step {} ({} users, {:.1f} s): {}", config.eval_part, epoch, state.step,
              result.all.count(), std::chrono::duration<double>(Clock::now() - start).count(),
              eval::format_metrics(result.all.values()));
    if (config.eval_long_history > 0) {
      log::info("eval {} epoch {} users with > {} events ({}): {}", config.eval_part, epoch,
                config.eval_long_history, result.long_histories.count(),
                eval::format_metrics(result.long_histories.values()));
    }
    values["step"] = static_cast<double>(state.step);
    values["epoch"] = static_cast<double>(epoch);
    values["users"] = static_cast<double>(result.all.count());
    metrics.write("eval", values);
  };

  model.train();
  TrainResult result;
  const auto start = Clock::now();
  const std::int64_t first_step = state.step;  // > 0 after a resume
  auto interval_start = Clock::now();
  double interval_loss = 0, grad_norm = 0, interval_flops = 0, interval_comm = 0;
  std::int64_t interval_steps = 0, interval_samples = 0, interval_tokens = 0;
  log::ProgressBar progress("train", planned);
  const StopSignals stop_signals;
  // The ranks agree on stopping (one may have got the signal before the others).
  const auto stop_requested = [&] {
    return dist::sum_over_ranks(comm, torch::tensor({static_cast<std::int64_t>(g_stop_signal)}, torch::kInt64))
               .item<std::int64_t>() != 0;
  };
  while (state.step < planned) {
    auto batch = train_loader.next();
    if (!batch) {  // end of an epoch
      state.epoch = train_loader.position().epoch;
      state.loader = train_loader.position();
      if (config.eval_every > 0 && state.epoch % config.eval_every == 0) run_eval(state.epoch);
      continue;
    }
    const double scale = lr_scale(state.step, config.warmup_steps, planned, config.schedule, config.min_lr_ratio);
    StepStats stats;
    try {
      stats = session.step(*batch, state.step, scale);
    } catch (const NonFiniteError&) {
      save();  // every rank is here: the state before the failed step, for inspection
      throw;
    }
    grad_norm = stats.grad_norm;
    ++state.step;
    state.loader = train_loader.position();

    interval_loss += stats.loss;
    ++interval_steps;
    interval_samples += stats.samples;
    interval_tokens += stats.tokens;
    interval_flops += stats.flops;
    interval_comm += stats.comm_seconds;
    progress.update(state.step);
    if (state.step % config.log_every == 0 || state.step == planned) {
      const double seconds = std::chrono::duration<double>(Clock::now() - interval_start).count();
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      const double eta = elapsed / static_cast<double>(state.step - first_step) *
                         static_cast<double>(planned - state.step);
      const double mean_loss = interval_loss / static_cast<double>(interval_steps);
      progress.finish();
      // MFU against every rank's peak (each rank measured its own; rank 0's stands for all).
      const double mfu = interval_flops / seconds / (peak * world);
      const double comm_ms = 1e3 * interval_comm / static_cast<double>(interval_steps);
      log::info("step {:>7} epoch {:>3} loss {:.4f} lr {:.2e} grad {:.3f} | {:.0f} samples/s {} tokens/s MFU {:.1f}%{} | "
                "ETA {}",
                state.step, state.epoch, mean_loss, config.lr * scale, grad_norm,
                static_cast<double>(interval_samples) / seconds,
                log::human_count(static_cast<double>(interval_tokens) / seconds), 100.0 * mfu,
                world > 1 ? fmt::format(" comm {:.1f} ms/step", comm_ms) : std::string(), format_duration(eta));
      progress = log::ProgressBar("train", planned);
      metrics.write("train", {{"step", static_cast<double>(state.step)},
                              {"epoch", static_cast<double>(state.epoch)},
                              {"loss", mean_loss},
                              {"lr", config.lr * scale},
                              {"grad_norm", grad_norm},
                              {"samples_per_s", static_cast<double>(interval_samples) / seconds},
                              {"tokens_per_s", static_cast<double>(interval_tokens) / seconds},
                              {"mfu", mfu},
                              {"comm_ms_per_step", comm_ms}});
      result.final_loss = mean_loss;
      interval_loss = interval_flops = interval_comm = 0;
      interval_steps = interval_samples = interval_tokens = 0;
      interval_start = Clock::now();
    }
    if (config.ckpt_every > 0 && state.step % config.ckpt_every == 0) save();
    if (stop_requested()) {
      progress.finish();
      state.epoch = state.loader.epoch;
      save();
      result.steps = state.step;
      result.epochs = static_cast<int>(state.epoch);
      result.stopped_by_signal = g_stop_signal != 0 ? static_cast<int>(g_stop_signal) : SIGTERM;
      result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
      log::info("stopped by a signal at step {} of {}; checkpoint saved: resume with --train.resume=auto", state.step,
                planned);
      return result;
    }
  }
  progress.finish();
  // A run that stops exactly at an epoch's last batch has completed that epoch.
  state.epoch = state.loader.epoch + (state.loader.batch >= per_epoch ? 1 : 0);
  run_eval(state.epoch);
  save();
  result.steps = state.step;
  result.epochs = static_cast<int>(state.epoch);
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  log::info("done: {} steps in {}", state.step, format_duration(result.seconds));
  return result;
}

}  // namespace longrec::train
