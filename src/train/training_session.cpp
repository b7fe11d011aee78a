#include "longrec/train/training_session.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>

#include <cmath>
#include <limits>

#include "longrec/core/error.h"
#include "longrec/core/rng.h"
#include "longrec/model/sequence_batch.h"

namespace longrec::train {

torch::Device pick_device(const std::string& requested) {
  if (requested == "cuda" || (requested == "auto" && torch::cuda::is_available())) {
    if (!torch::cuda::is_available()) throw ConfigError("train.device", "cuda requested but no GPU is available");
    return torch::kCUDA;
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
                                 torch::Device device)
    : train_(train), config_(config), device_(device) {
  torch::manual_seed(config.seed);
  model_ = std::make_shared<model::SequentialRecommender>(config);
  model_->to(device);
  model::SparseOptimizerConfig sparse{train.sparse_optimizer, train.sparse_lr, 1e-8, train.beta1, train.beta2};
  items_ = std::make_unique<model::LocalItemEmbedding>(num_items, config.dim, sparse,
                                                       derive_seed(config.seed, 0x17E35ull), device);
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      model_->parameters(),
      torch::optim::AdamWOptions(train.lr).betas({train.beta1, train.beta2}).weight_decay(train.weight_decay));
}

StepStats TrainingSession::step(const data::Batch& batch, std::int64_t step, double lr_scale) {
  for (auto& group : optimizer_->param_groups()) group.options().set_lr(train_.lr * lr_scale);
  const auto sequence = model::to_sequence_batch(batch, device_);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(derive_seed(config_.seed, 0x9E6ull, step));

  // bf16 autocast on GPU only; CPU runs fp32.
  const bool autocast = device_.is_cuda() && train_.bf16;
  if (autocast) {
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  }
  optimizer_->zero_grad();
  auto loss = model::sampled_softmax_loss(*model_, *items_, sequence, generator);
  if (autocast) {
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
  }
  loss.loss.backward();
  const double max_norm = train_.clip_grad_norm > 0 ? train_.clip_grad_norm : std::numeric_limits<double>::infinity();
  StepStats stats;
  stats.grad_norm = torch::nn::utils::clip_grad_norm_(model_->parameters(), max_norm);
  stats.loss = loss.loss.item<double>();
  if (!std::isfinite(stats.loss) || !std::isfinite(stats.grad_norm)) {
    const std::string where = !std::isfinite(stats.loss) ? std::string("loss") : first_non_finite(*model_);
    throw Error(fmt::format("non-finite {} at step {} (loss {}, gradient norm {}); nothing was updated",
                            where.empty() ? "value" : where, step, stats.loss, stats.grad_norm));
  }
  optimizer_->step();
  items_->apply_gradients(loss.rows, train_.sparse_lr * lr_scale);

  stats.samples = batch.rows;
  for (auto len : batch.lengths) stats.tokens += len;
  stats.flops = model_->training_flops_per_token(batch.width) * static_cast<double>(stats.tokens);
  return stats;
}

}  // namespace longrec::train
