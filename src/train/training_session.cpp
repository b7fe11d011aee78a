#include "longrec/train/training_session.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>

#include <chrono>
#include <cmath>
#include <limits>

#include "longrec/core/error.h"
#include "longrec/core/rng.h"
#include "longrec/dist/sharded_item_embedding.h"
#include "longrec/model/sequence_batch.h"

namespace longrec::train {

torch::Device pick_device(const std::string& requested, int local_rank) {
  if (requested == "cuda" || (requested == "auto" && torch::cuda::is_available())) {
    if (!torch::cuda::is_available()) throw ConfigError("train.device", "cuda requested but no GPU is available");
    const auto count = static_cast<int>(torch::cuda::device_count());
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank % count));
  }
  return torch::kCPU;
}

namespace {

// Names the first dense parameter (or gradient) that is not finite.
std::string first_non_finite(const torch::nn::Module& module) {
  for (const auto& p : module.named_parameters()) {
    if (p.value().grad().defined() && !torch::isfinite(p.value().grad()).all().item<bool>()) return p.key() + ".grad";
    if (!torch::isfinite(p.value()).all().item<bool>()) return p.key();
  }
  return "";
}

}  // namespace

TrainingSession::TrainingSession(const TrainConfig& train, const model::ModelConfig& config, std::int64_t num_items,
                                 torch::Device device, dist::Communicator* comm)
    : train_(train), config_(config), device_(device) {
  if (comm == nullptr) own_comm_ = dist::make_single_process_communicator();
  comm_ = comm != nullptr ? comm : own_comm_.get();
  if (comm_->world() > 1 && config.in_batch_negatives) {
    // A rank sees only its rows' targets: W ranks would not train what one process trains.
    throw ConfigError("model.in_batch_negatives", fmt::format("not supported on {} ranks (a rank holds only its "
                                                              "own rows of the batch); use sampled negatives",
                                                              comm_->world()));
  }
  // Every rank draws the same initial dense parameters from the seed.
  torch::manual_seed(config.seed);
  model_ = std::make_shared<model::SequentialRecommender>(config);
  model_->to(device);
  model::SparseOptimizerConfig sparse{train.sparse_optimizer, train.sparse_lr, 1e-8, train.beta1, train.beta2};
  const auto table_seed = derive_seed(config.seed, 0x17E35ull);
  if (comm_->world() > 1) {
    items_ = std::make_unique<dist::ShardedItemEmbedding>(num_items, config.dim, sparse, table_seed, *comm_, device);
  } else {
    items_ = std::make_unique<model::LocalItemEmbedding>(num_items, config.dim, sparse, table_seed, device);
  }
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      model_->parameters(),
      torch::optim::AdamWOptions(train.lr).betas({train.beta1, train.beta2}).weight_decay(train.weight_decay));
  gradient_sync_ = std::make_unique<dist::GradientSync>(*comm_);
}

StepStats TrainingSession::step(const data::Batch& batch, std::int64_t step, double lr_scale) {
  using Clock = std::chrono::steady_clock;
  const auto seconds_since = [](Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  };
  for (auto& group : optimizer_->param_groups()) group.options().set_lr(train_.lr * lr_scale);
  // Dropout masks from (seed, step, rank): reproducible, and the same after a resume.
  torch::manual_seed(derive_seed(config_.seed, 0xD50ull, step, comm_->rank()));
  const auto sequence = model::to_sequence_batch(batch, device_);
  StepStats stats;

  // The global batch's supervised positions (the loss normaliser), inputs and
  // model FLOPs (each rank's at its own batch width).
  std::int64_t tokens = 0;
  for (auto len : batch.lengths) tokens += len;
  const auto flops = static_cast<std::int64_t>(model_->training_flops_per_token(batch.width) *
                                               static_cast<double>(tokens));
  auto t = Clock::now();
  const auto counts = dist::sum_over_ranks(
      *comm_, torch::tensor({batch.rows > 0 ? (sequence.targets > 0).sum().item<std::int64_t>() : 0, tokens, flops},
                            torch::kInt64));
  stats.comm_seconds += seconds_since(t);
  const auto global_positions = counts[0].item<std::int64_t>();
  stats.tokens = counts[1].item<std::int64_t>();
  stats.flops = static_cast<double>(counts[2].item<std::int64_t>());
  stats.samples = comm_->world() > 1 ? batch.global_rows : batch.rows;

  optimizer_->zero_grad();
  model::TrainingLoss loss;
  if (batch.rows > 0) {
    // bf16 autocast on GPU only; CPU runs fp32.
    const bool autocast = device_.is_cuda() && train_.bf16;
    if (autocast) {
      at::autocast::set_autocast_enabled(at::kCUDA, true);
      at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    }
    loss = model::sampled_softmax_loss(*model_, *items_, sequence, derive_seed(config_.seed, 0x9E6ull, step),
                                       global_positions);
    if (autocast) {
      at::autocast::set_autocast_enabled(at::kCUDA, false);
      at::autocast::clear_cache();
    }
    loss.loss.backward();
  } else {
    // No rows here: the table's gather is collective all the same.
    loss.rows = items_->gather(torch::zeros({0}, torch::TensorOptions().dtype(torch::kInt64).device(device_)));
  }
  t = Clock::now();
  gradient_sync_->all_reduce(model_->parameters());
  stats.loss = dist::sum_over_ranks(
                   *comm_, torch::tensor({loss.loss.defined() ? loss.loss.item<double>() : 0.0}, torch::kFloat64))
                   .item<double>();
  stats.comm_seconds += seconds_since(t);

  const double max_norm = train_.clip_grad_norm > 0 ? train_.clip_grad_norm : std::numeric_limits<double>::infinity();
  stats.grad_norm = torch::nn::utils::clip_grad_norm_(model_->parameters(), max_norm);
  if (!std::isfinite(stats.loss) || !std::isfinite(stats.grad_norm)) {
    const std::string where = !std::isfinite(stats.loss) ? std::string("loss") : first_non_finite(*model_);
    throw NonFiniteError(fmt::format("non-finite {} at step {} (loss {}, gradient norm {}); nothing was updated",
                            where.empty() ? "value" : where, step, stats.loss, stats.grad_norm));
  }
  if (global_positions > 0) optimizer_->step();
  t = Clock::now();
  items_->apply_gradients(loss.rows, train_.sparse_lr * lr_scale);
  stats.comm_seconds += comm_->world() > 1 ? seconds_since(t) : 0.0;

  return stats;
}

}  // namespace longrec::train
