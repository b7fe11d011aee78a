// The training loop: one process (the dist module plugs in the sharded table
// and gradient sync through the same interfaces).
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "longrec/ckpt/checkpoint.h"
#include "longrec/core/error.h"
#include "longrec/core/log.h"
#include "longrec/core/rng.h"
#include "longrec/data/history_store.h"
#include "longrec/eval/retrieval.h"
#include "longrec/model/sequential_recommender.h"
#include "longrec/train/lr_schedule.h"
#include "longrec/core/metrics_log.h"
#include "longrec/train/peak_flops.h"
#include "longrec/train/train_config.h"

namespace longrec::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

torch::Device pick_device(const std::string& requested) {
  if (requested == "cuda" || (requested == "auto" && torch::cuda::is_available())) {
    if (!torch::cuda::is_available()) throw ConfigError("train.device", "cuda requested but no GPU is available");
    return torch::kCUDA;
  }
  return torch::kCPU;
}

std::string format_duration(double seconds) {
  const auto s = static_cast<std::int64_t>(seconds);
  return s >= 3600 ? fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60) : fmt::format("{}m{:02d}s", s / 60, s % 60);
}

// Names the first dense parameter whose gradient is not finite.
std::string first_non_finite(const torch::nn::Module& module) {
  for (const auto& p : module.named_parameters()) {
    if (p.value().grad().defined() && !torch::isfinite(p.value().grad()).all().item<bool>()) return p.key() + ".grad";
    if (!torch::isfinite(p.value()).all().item<bool>()) return p.key();
  }
  return "";
}

}  // namespace

TrainResult run_training(const TrainConfig& config, const model::ModelConfig& model_config,
                         const data::LoaderConfig& data_config, const std::string& resolved_table,
                         const std::string& resolved_ini) {
  if (data_config.max_len > model_config.max_len) {
    throw ConfigError("data.max_len", fmt::format("{} exceeds model.max_len = {}: the model's position tables and "
                                                  "normaliser must cover the longest window",
                                                  data_config.max_len, model_config.max_len));
  }
  if (config.threads > 0) at::set_num_threads(config.threads);
  const torch::Device device = pick_device(config.device);
  fs::create_directories(config.run_dir);
  log::set_file(fs::path(config.run_dir) / "train-rank-00000.log");
  log::info("longrec train: {} on {}, {} intra-op threads", model_config.describe(), device.str(),
            at::get_num_threads());
  log::info("resolved config:\n{}", resolved_table);
  {
    std::ofstream ini(fs::path(config.run_dir) / "config.ini");
    ini << resolved_ini;
  }

  data::HistoryLoader train_loader(config.dataset, data_config, data::SplitPart::Train);
  auto eval_data = data_config;
  data::HistoryLoader eval_loader(config.dataset, eval_data, data::parse_split_part(config.eval_part));
  const std::int64_t num_items = train_loader.num_items();

  torch::manual_seed(model_config.seed);
  auto model = std::make_shared<model::SequentialRecommender>(model_config);
  model->to(device);
  model::SparseOptimizerConfig sparse{config.sparse_optimizer, config.sparse_lr, 1e-8, config.beta1, config.beta2};
  model::LocalItemEmbedding items(num_items, model_config.dim, sparse, derive_seed(model_config.seed, 0x17E35ull),
                                  device);
  torch::optim::AdamW optimizer(
      model->parameters(),
      torch::optim::AdamWOptions(config.lr).betas({config.beta1, config.beta2}).weight_decay(config.weight_decay));

  ckpt::Manifest manifest;
  manifest.model = model_config;
  manifest.num_items = num_items;
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
      ckpt::load_checkpoint(checkpoint, loaded, *model, &optimizer, items);
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
  log::info("{} users, {} items; {} batches per epoch, {} steps planned; matmul peak {:.1f} GFLOP/s",
            train_loader.rank_users(), num_items, per_epoch, planned, peak / 1e9);
  MetricsLog metrics(fs::path(config.run_dir) / "metrics-rank-00000.jsonl");

  const auto save = [&] {
    const auto path = ckpt::save_checkpoint(config.run_dir, manifest, *model, optimizer, items, config.keep_ckpts);
    log::info("checkpoint {}", path.string());
  };
  const auto run_eval = [&](std::int64_t epoch) {
    const auto start = Clock::now();
    const auto result = eval::evaluate(*model, items, eval_loader, device);
    auto values = result.values();
    log::info("eval {} epoch {} step {} ({} users, {:.1f} s): {}", config.eval_part, epoch, state.step, result.count(),
              std::chrono::duration<double>(Clock::now() - start).count(), eval::format_metrics(values));
    values["step"] = static_cast<double>(state.step);
    values["epoch"] = static_cast<double>(epoch);
    values["users"] = static_cast<double>(result.count());
    metrics.write("eval", values);
  };

  model->train();
  TrainResult result;
  const auto start = Clock::now();
  auto interval_start = Clock::now();
  double interval_loss = 0, grad_norm = 0, interval_flops = 0;
  std::int64_t interval_steps = 0, interval_samples = 0, interval_tokens = 0;
  log::ProgressBar progress("train", planned);
  while (state.step < planned) {
    auto batch = train_loader.next();
    if (!batch) {  // end of an epoch
      state.epoch = train_loader.position().epoch;
      state.loader = train_loader.position();
      if (config.eval_every > 0 && state.epoch % config.eval_every == 0) run_eval(state.epoch);
      continue;
    }
    if (batch->rows == 0) continue;
    const double scale = lr_scale(state.step, config.warmup_steps, planned, config.schedule, config.min_lr_ratio);
    for (auto& group : optimizer.param_groups()) group.options().set_lr(config.lr * scale);

    const auto sequence = model::to_sequence_batch(*batch, device);
    auto generator = at::make_generator<at::CPUGeneratorImpl>(derive_seed(model_config.seed, 0x9E6ull, state.step));
    optimizer.zero_grad();
    auto loss = model::sampled_softmax_loss(*model, items, sequence, generator);
    loss.loss.backward();
    grad_norm = config.clip_grad_norm > 0
                    ? torch::nn::utils::clip_grad_norm_(model->parameters(), config.clip_grad_norm)
                    : torch::nn::utils::clip_grad_norm_(model->parameters(), std::numeric_limits<double>::infinity());
    const double loss_value = loss.loss.item<double>();
    if (!std::isfinite(loss_value) || !std::isfinite(grad_norm)) {
      const std::string where = !std::isfinite(loss_value) ? std::string("loss") : first_non_finite(*model);
      save();
      throw Error(fmt::format("non-finite {} at step {} (loss {}, grad norm {}); stopped, state saved as a checkpoint "
                              "of step {}",
                              where.empty() ? "value" : where, state.step, loss_value, grad_norm, state.step));
    }
    optimizer.step();
    items.apply_gradients(loss.rows, config.sparse_lr * scale);
    ++state.step;
    state.loader = train_loader.position();

    interval_loss += loss_value;
    ++interval_steps;
    interval_samples += batch->rows;
    std::int64_t tokens = 0;
    for (auto len : batch->lengths) tokens += len;
    interval_tokens += tokens;
    interval_flops += model->training_flops_per_token(batch->width) * static_cast<double>(tokens);
    progress.update(state.step);
    if (state.step % config.log_every == 0 || state.step == planned) {
      const double seconds = std::chrono::duration<double>(Clock::now() - interval_start).count();
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      const double eta = elapsed / static_cast<double>(state.step - result.steps + 0) *
                         static_cast<double>(planned - state.step);
      const double mean_loss = interval_loss / static_cast<double>(interval_steps);
      progress.finish();
      log::info("step {:>7} epoch {:>3} loss {:.4f} lr {:.2e} grad {:.3f} | {:.0f} samples/s {} tokens/s MFU {:.1f}% | "
                "ETA {}",
                state.step, state.epoch, mean_loss, config.lr * scale, grad_norm,
                static_cast<double>(interval_samples) / seconds,
                log::human_count(static_cast<double>(interval_tokens) / seconds),
                100.0 * interval_flops / seconds / peak, format_duration(eta));
      progress = log::ProgressBar("train", planned);
      metrics.write("train", {{"step", static_cast<double>(state.step)},
                              {"epoch", static_cast<double>(state.epoch)},
                              {"loss", mean_loss},
                              {"lr", config.lr * scale},
                              {"grad_norm", grad_norm},
                              {"samples_per_s", static_cast<double>(interval_samples) / seconds},
                              {"tokens_per_s", static_cast<double>(interval_tokens) / seconds},
                              {"mfu", interval_flops / seconds / peak}});
      result.final_loss = mean_loss;
      interval_loss = interval_flops = 0;
      interval_steps = interval_samples = interval_tokens = 0;
      interval_start = Clock::now();
    }
    if (config.ckpt_every > 0 && state.step % config.ckpt_every == 0) save();
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
