// run_training, top to bottom: set up the rank (device, communicator, logs),
// the data, the session and its checkpoint; then the loop: batch, step,
// report, checkpoint, stop on a signal; evaluate at epoch ends and at the end.
// Logging (training_log), evaluation scheduling (periodic_eval) and signals
// (stop_signals) each live in their own file.
#include "longrec/train/trainer.h"

#include <unistd.h>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>

#include "longrec/ckpt/checkpoint.h"
#include "longrec/core/error.h"
#include "longrec/core/log.h"
#include "longrec/distributed/communicator.h"
#include "longrec/distributed/runtime.h"
#include "longrec/train/lr_schedule.h"
#include "longrec/train/model_selection.h"
#include "longrec/train/peak_flops.h"
#include "longrec/train/training_session.h"
#include "periodic_eval.h"
#include "stop_signals.h"
#include "training_log.h"

namespace longrec::train {

namespace fs = std::filesystem;

namespace {

// This rank's log file, its first lines, and the resolved config beside the run.
void start_run_log(const TrainConfig& config, const model::ModelConfig& model_config, const torch::Device& device,
                   distributed::Communicator& comm, const std::string& resolved_table,
                   const std::string& resolved_ini) {
  log::set_rank(comm.rank());
  fs::create_directories(config.run_dir);
  log::set_file(fs::path(config.run_dir) / fmt::format("train-rank-{:05d}.log", comm.rank()));
  log::info("longrec train: {} on {}, {} intra-op threads; rank {} of {} (pid {}, {} backend)", model_config.describe(),
            device.str(), at::get_num_threads(), comm.rank(), comm.world(), ::getpid(), comm.backend());
  log::info("resolved config:\n{}", resolved_table);
  if (comm.rank() == 0) {
    std::ofstream ini(fs::path(config.run_dir) / "config.ini");
    ini << resolved_ini;
  }
}

// Loads the checkpoint `config.resume` names into the session, if any;
// returns the trainer state to continue from.
ckpt::TrainerState resume_if_asked(const TrainConfig& config, const model::ModelConfig& model_config,
                                   std::int64_t num_items, std::int64_t batches_per_epoch, TrainingSession& session) {
  if (config.resume.empty()) return {};
  const fs::path checkpoint = ckpt::resolve_checkpoint(config.run_dir, config.resume);
  if (checkpoint.empty()) {
    log::info("resume=auto: no checkpoint in {}, starting fresh", (fs::path(config.run_dir) / "ckpt").string());
    return {};
  }
  const auto loaded = ckpt::read_manifest(checkpoint);
  ckpt::check_compatible(loaded, model_config, num_items, checkpoint);
  if (loaded.batches_per_epoch != batches_per_epoch) {
    throw ConfigError("data.batch_size",
                      fmt::format("{} was trained with {} batches per epoch, this configuration makes {}: the loader "
                                  "position cannot be resumed (data.batch_size or another [data] key differs)",
                                  checkpoint.string(), loaded.batches_per_epoch, batches_per_epoch));
  }
  ckpt::load_checkpoint(checkpoint, loaded, session.model(), &session.optimizer(), session.items());
  log::info("resumed from {} at step {} (epoch {}, batch {})", checkpoint.string(), loaded.trainer.step,
            loaded.trainer.loader.epoch, loaded.trainer.loader.batch);
  return loaded.trainer;
}

// Rank 0's value on every rank. The metrics are already the same on every
// rank (each one ranks the whole global batch); taking rank 0's makes the
// selection and stop decisions the same by construction, not by arithmetic.
double rank0_value(distributed::Communicator& comm, const torch::Device& device, double value) {
  if (comm.world() == 1) return value;
  auto wire = torch::tensor({value}, torch::kFloat64).to(comm.wire_device(device));
  comm.broadcast(wire, 0);
  return wire.to(torch::kCPU).item<double>();
}

// The selection of train.select_by (none when off), continuing the resumed
// checkpoint's state when it selected by the same metric.
std::optional<ModelSelection> start_selection(const TrainConfig& config, const ckpt::SelectionState& resumed,
                                              std::int64_t resumed_step) {
  const auto select_by = parse_select_by(config.select_by, config.eval_protocol.resolve().cutoffs);
  if (!select_by) {
    // The resumed state stays as it was: its BEST and best checkpoint are kept.
    if (!resumed.metric.empty()) {
      log::info("train.select_by is none: the checkpoint's selection by {} is kept as it was, not continued",
                resumed.metric);
    }
    return std::nullopt;
  }
  ckpt::SelectionState state = resumed;
  if (!state.metric.empty() && state.metric != select_by->name()) {
    log::warn("the resumed checkpoint selected by {}, this run selects by {}: the best checkpoint so far starts over",
              state.metric, select_by->name());
    state = {};
  } else if (state.metric.empty() && resumed_step > 0) {
    log::info(
        "the resumed checkpoint has no selection state (trained without train.select_by): selection by {} "
        "starts at step {}",
        select_by->name(), resumed_step);
  }
  ModelSelection selection(*select_by, config.early_stop_patience, state);
  if (selection.state().last_eval_step >= 0) {
    log::info("selection resumed: best {}; {} evaluation(s) without improvement since{}", selection.describe_best(),
              selection.state().evals_since_best,
              config.early_stop_patience > 0 ? fmt::format(" (patience {})", config.early_stop_patience) : "");
  }
  return selection;
}

}  // namespace

TrainResult run_training(const TrainConfig& config, const model::ModelConfig& given_model_config,
                         const data::LoaderConfig& data_config, const std::string& resolved_table,
                         const std::string& resolved_ini, distributed::Communicator* job_comm) {
  // hllm records its tokenizer's checksum and vocabulary in the model configuration (below).
  model::ModelConfig model_config = given_model_config;
  model::check_model_fits_history(model_config.max_len, model_config.personalization, data_config.max_len);
  check_selection(config, data_config);  // (and select_by itself, for callers that bypass the CLI)
  const distributed::Topology topology = job_comm != nullptr              ? job_comm->topology()
                                         : distributed::launched_by_mpi() ? distributed::MpiRuntime::start().topology()
                                                                          : distributed::Topology{};
  // Before anything is allocated: a step that cannot fit is refused by its keys.
  check_training_memory(config, model_config, data_config, topology.world, topology.local_world, 0);
  if (config.threads > 0) at::set_num_threads(config.threads);
  // The node-local rank picks the GPU.
  const int local_rank = job_comm != nullptr ? job_comm->topology().local_rank : distributed::job_local_rank();
  const torch::Device device = pick_device(config.device, local_rank);
  std::unique_ptr<distributed::Communicator> own_comm;
  if (job_comm == nullptr) own_comm = distributed::make_job_communicator(device);
  distributed::Communicator& comm = job_comm != nullptr ? *job_comm : *own_comm;
  start_run_log(config, model_config, device, comm, resolved_table, resolved_ini);
  // Generous until the first step completes, then the steady timeout (issue 14).
  comm.set_collective_timeout(std::max(config.startup_collective_timeout, config.collective_timeout));
  if (comm.world() > 1) {
    log::info("collective timeout {:g} s until the first step completes, then {:g} s", comm.collective_timeout(),
              config.collective_timeout);
  }

  // Each rank streams only its own users; the global batches are the same for any world size.
  data::HistoryLoader train_loader(config.dataset, data_config, data::SplitPart::Train, comm.rank(), comm.world());
  PeriodicEvaluation evaluation(config, data_config, comm.rank(), comm.world());
  const std::int64_t num_items = train_loader.num_items();
  std::shared_ptr<model::ItemTextInputs> item_texts;
  if (model_config.backbone == "hllm") {
    // Every rank tokenizes (or reads the cache of) the same texts; the cache is replaced atomically.
    // (Before the memory check: the item LLM's vocabulary comes from the tokenizer.)
    model::apply_item_pretrained_sizes(model_config);
    item_texts = model::prepare_item_texts(model_config, config.dataset, fs::path(config.run_dir) / "item_tokens.h5");
  }
  const auto memory =
      check_training_memory(config, model_config, data_config, comm.world(), comm.topology().local_world, num_items);
  log::info("estimated step memory: {} ({})", model::format_bytes(memory.total_bytes()), memory.describe());
  TrainingSession session(config, model_config, num_items, device, &comm, item_texts);
  // A fresh start from a pretrained item LLM (a resumed run loads its checkpoint over it below).
  model::load_item_pretrained(session.model());
  const std::int64_t per_epoch = train_loader.batches_per_epoch();
  // Negatives and unique ids of every batch are drawn on the loader's thread.
  train_loader.set_batch_preparer(session.batch_preparer(per_epoch));

  ckpt::Manifest manifest;
  manifest.model = model_config;
  manifest.num_items = num_items;
  manifest.history_window = data_config.max_len;
  manifest.config_ini = resolved_ini;
  // Absolute: `eval` / `export` of the checkpoint work from any directory.
  manifest.dataset = fs::absolute(config.dataset).lexically_normal().string();
  ckpt::TrainerState& state = manifest.trainer;
  manifest.batches_per_epoch = per_epoch;
  state = resume_if_asked(config, model_config, num_items, per_epoch, session);
  train_loader.restore(state.loader);
  std::optional<ModelSelection> selection = start_selection(config, state.selection, state.step);
  if (selection) state.selection = selection->state();

  const std::int64_t planned = config.max_steps > 0
                                   ? std::min<std::int64_t>(config.max_steps, per_epoch * config.epochs)
                                   : per_epoch * config.epochs;
  const double peak = measure_matmul_peak_flops(device);
  log::info("{} users on this rank, {} items; {} batches per epoch, {} steps planned; matmul peak {:.1f} GFLOP/s",
            train_loader.rank_users(), num_items, per_epoch, planned, peak / 1e9);
  TrainingLog training_log(config, fs::path(config.run_dir) / fmt::format("metrics-rank-{:05d}.jsonl", comm.rank()),
                           planned, state.step, peak, comm.world());
  const auto save = [&] {
    const auto path = ckpt::save_checkpoint(config.run_dir, manifest, session.model(), session.optimizer(),
                                            session.items(), config.keep_ckpts, comm);
    log::info("checkpoint {}", path.string());
  };
  // One selection point (train.select_by): evaluate valid at this step, keep
  // the checkpoint when it is the best so far; true: patience used up, stop.
  const auto evaluate_and_select = [&]() -> bool {
    if (selection->counted(state.step)) return selection->patience_used_up();  // in the resumed state already
    const auto values = evaluation.run(session, state.epoch, state.step, training_log);
    const double value = rank0_value(comm, device, values.at(selection->select_by().metric));
    const auto decision = selection->observe(value, state.step, state.epoch);
    state.selection = selection->state();
    const auto& s = selection->state();
    log::info(
        "select by {}: {:.6f} at step {} (epoch {}): {}", s.metric, value, state.step, state.epoch,
        decision.improved
            ? std::string("the best so far, kept")
            : fmt::format("no improvement on {} ({} in a row{})", selection->describe_best(), s.evals_since_best,
                          config.early_stop_patience > 0 ? fmt::format(" of patience {}", config.early_stop_patience)
                                                         : std::string()));
    if (decision.improved) save();
    if (decision.stop) {
      log::info("early stop at step {} (epoch {}): {} evaluations without improvement; best {}", state.step,
                state.epoch, s.evals_since_best, selection->describe_best());
    }
    return decision.stop;
  };
  const auto finish = [&](TrainResult result) {
    result.steps = state.step;
    result.epochs = static_cast<int>(state.epoch);
    result.final_loss = training_log.last_mean_loss();
    result.seconds = training_log.elapsed_seconds();
    return result;
  };

  session.model().train();
  const StopSignals stop_signals;
  bool steady_timeout = false;  // the start-up collective timeout applies until a step completed
  // A resumed run that had already stopped early (and keeps its patience) trains no further.
  bool stopped_early = selection && selection->patience_used_up();
  if (stopped_early) {
    log::info("early stopping was reached before this checkpoint (best {}); no further steps",
              selection->describe_best());
  }
  while (state.step < planned && !stopped_early) {
    auto batch = train_loader.next();
    if (!batch) {  // end of an epoch
      state.epoch = train_loader.position().epoch;
      state.loader = train_loader.position();
      if (evaluation.due_after(state.epoch)) {
        if (selection) {
          stopped_early = evaluate_and_select();
        } else {
          evaluation.run(session, state.epoch, state.step, training_log);
        }
      }
      continue;
    }
    LONGREC_CHECK(TrainingSession::is_prepared_for(*batch, state.step),
                  "the loader prepared batch {} of epoch {} for another step than {}", batch->global_index,
                  batch->epoch, state.step);
    const double scale = lr_scale(state.step, config.warmup_steps, planned, config.schedule, config.min_lr_ratio);
    // The next batch (none at an epoch's end or after the last step): its item
    // ids can travel to their owners while this step computes.
    const data::Batch* next = state.step + 1 < planned ? train_loader.peek() : nullptr;
    StepStats stats;
    try {
      stats = session.step(*batch, state.step, scale, next);
    } catch (const NonFiniteError&) {
      save();  // every rank is here: the state before the failed step, for inspection
      throw;
    }
    if (!steady_timeout) {
      comm.set_collective_timeout(config.collective_timeout);
      steady_timeout = true;
    }
    ++state.step;
    state.loader = train_loader.position();
    training_log.step(state.step, state.epoch, stats, config.lr * scale);
    if (config.ckpt_every > 0 && state.step % config.ckpt_every == 0) save();
    if (stop_signals.requested(comm)) {
      training_log.finish_progress();
      state.epoch = state.loader.epoch;
      save();
      TrainResult result;
      result.stopped_by_signal = stop_signals.received() != 0 ? stop_signals.received() : SIGTERM;
      log::info("stopped by a signal at step {} of {}; checkpoint saved: resume with --train.resume=auto", state.step,
                planned);
      return finish(result);
    }
  }
  training_log.finish_progress();
  // A run that stops exactly at an epoch's last batch has completed that epoch.
  state.epoch = state.loader.epoch + (state.loader.batch >= per_epoch ? 1 : 0);
  if (!selection) {
    if (config.final_eval) evaluation.run(session, state.epoch, state.step, training_log);
    save();
    const auto result = finish({});
    log::info("done: {} steps in {}", state.step, format_duration(result.seconds));
    return result;
  }

  // With selection: a run that ends at an evaluation point (an epoch's end)
  // evaluates it as the next epoch's start would have; a run that ends
  // mid-epoch (max_steps) adds no evaluation, so that a run continued from its
  // checkpoint decides as one that never stopped. LATEST keeps the last state,
  // BEST names the best; eval_part is reported at the best checkpoint.
  if (!stopped_early && state.loader.batch >= per_epoch && evaluation.due_after(state.epoch)) {
    stopped_early = evaluate_and_select();
  }
  // (An improving evaluation at this step has just saved this state.)
  if (selection->state().best_step != state.step) save();
  TrainResult result = finish({});
  result.stopped_early = stopped_early && state.step < planned;
  const auto best = selection->state();
  result.selected_by = best.metric;
  result.best_step = best.best_step;
  result.best_epoch = best.best_epoch;
  result.best_value = best.best_value;
  if (best.best_step < 0) {
    log::warn("no evaluation of {} (or none with a finite value): no best checkpoint; {} is reported at the last step",
              best.metric, config.eval_part);
    if (config.final_eval) evaluation.run_final(session, state.epoch, state.step, training_log);
  } else {
    const fs::path best_dir = fs::path(config.run_dir) / "ckpt" / ckpt::step_directory_name(best.best_step);
    if (best.best_step != state.step) {
      const auto manifest_of_best = ckpt::read_manifest(best_dir);
      ckpt::load_checkpoint(best_dir, manifest_of_best, session.model(), nullptr, session.items());
    }
    log::info("best checkpoint: {}, {} (`longrec eval --checkpoint {}` evaluates it again)", best_dir.string(),
              selection->describe_best(), (fs::path(config.run_dir) / "ckpt" / ckpt::kBestFile).string());
    if (config.final_eval) evaluation.run_final(session, best.best_epoch, best.best_step, training_log, &best);
  }
  log::info("done: {} steps in {}{}", state.step, format_duration(result.seconds),
            result.stopped_early ? " (stopped early)" : "");
  return result;
}

}  // namespace longrec::train
