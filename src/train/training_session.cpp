#include "longrec/train/training_session.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>

#include <chrono>
#include <cmath>
#include <limits>

#include "longrec/core/error.h"
#include "longrec/core/rng.h"
#include "longrec/distributed/sharded_item_table.h"
#include "longrec/model/sampled_softmax.h"
#include "longrec/model/sequence_batch.h"
#include "longrec/model/step_inputs.h"

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
                                 torch::Device device, distributed::Communicator* comm,
                                 std::shared_ptr<const model::ItemTextInputs> item_texts)
    : train_(train), config_(config), device_(device) {
  if (comm == nullptr) own_comm_ = distributed::make_single_process_communicator();
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
  if (config.backbone == "hllm" && item_texts == nullptr && model_->item_encoder() == nullptr) {
    // The user LLM alone over learned item rows (hllm.vocab_size 0, no texts): what `bench tokens
    // --backbone hllm` times, since the item LLM's cost does not depend on the history length.
    items_ = std::make_unique<model::LocalItemTable>(num_items, config.dim, sparse, table_seed, device);
  } else if (config.backbone == "hllm") {
    if (item_texts == nullptr || model_->item_encoder() == nullptr) {
      throw ConfigError("model.backbone",
                        "hllm computes item vectors from item texts: it needs hllm.tokenizer and a "
                        "dataset with item text");
    }
    if (item_texts->num_items() != num_items) {
      throw DataError(
          fmt::format("the item texts cover {} items, the dataset has {}", item_texts->num_items(), num_items));
    }
    // Every rank encodes the whole catalogue when it needs it (evaluation); the item LLM's
    // parameters are dense, summed over ranks like every other.
    items_ = std::make_unique<model::TextItemVectors>(model_->item_encoder(), std::move(item_texts),
                                                      config.hllm.encode_chunk, comm_->rank(), comm_->world());
  } else if (comm_->world() > 1) {
    auto sharded =
        std::make_unique<distributed::ShardedItemTable>(num_items, config.dim, sparse, table_seed, *comm_, device);
    sharded_ = sharded.get();
    items_ = std::move(sharded);
  } else {
    items_ = std::make_unique<model::LocalItemTable>(num_items, config.dim, sparse, table_seed, device);
  }
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      model_->parameters(),
      torch::optim::AdamWOptions(train.lr).betas({train.beta1, train.beta2}).weight_decay(train.weight_decay));
  gradient_sync_ = std::make_unique<distributed::GradientSync>(*comm_);
}

namespace {

// The step inputs the loader's thread prepared for a batch.
struct PreparedStep final : data::BatchPreparation {
  std::int64_t step = 0;
  model::StepInputs inputs;
};

// The loader-prepared inputs of `batch` when they are of this step, else null.
const PreparedStep* prepared_for(const data::Batch& batch, std::int64_t step) {
  const auto* prepared = dynamic_cast<const PreparedStep*>(batch.prepared.get());
  return prepared != nullptr && prepared->step == step ? prepared : nullptr;
}

}  // namespace

std::function<void(data::Batch&)> TrainingSession::batch_preparer(std::int64_t batches_per_epoch) const {
  // Copies: the loader's thread must not read the session.
  return [config = config_, num_items = items_->num_items(), batches_per_epoch](data::Batch& batch) {
    auto prepared = std::make_shared<PreparedStep>();
    prepared->step = batch.epoch * batches_per_epoch + batch.global_index;
    prepared->inputs = model::prepare_step_inputs(model::to_sequence_batch(batch), config, num_items,
                                                  model::negatives_seed(config, prepared->step));
    batch.prepared = std::move(prepared);
  };
}

bool TrainingSession::is_prepared_for(const data::Batch& batch, std::int64_t step) {
  return prepared_for(batch, step) != nullptr;
}

// A pending route still completes (every rank started it) when its step never runs.
TrainingSession::~TrainingSession() = default;

StepStats TrainingSession::step(const data::Batch& batch, std::int64_t step, double lr_scale, const data::Batch* next) {
  using Clock = std::chrono::steady_clock;
  const auto seconds_since = [](Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  };
  for (auto& group : optimizer_->param_groups()) group.options().set_lr(train_.lr * lr_scale);
  // Names this step's collectives in a timeout's report (the log's step count).
  distributed::CollectiveLabel step_label(*comm_, fmt::format("training step {}", step + 1));
  // Dropout masks from (seed, step, rank): reproducible, and the same after a resume.
  torch::manual_seed(derive_seed(config_.seed, 0xD50ull, step, comm_->rank()));
  // Negatives and unique ids: prepared on the loader's thread for this step,
  // or here (the same values) for a batch that comes without them.
  const auto* prepared = prepared_for(batch, step);
  const auto inputs = prepared != nullptr
                          ? prepared->inputs.to(device_)
                          : model::prepare_step_inputs(model::to_sequence_batch(batch, device_), config_,
                                                       items_->num_items(), model::negatives_seed(config_, step));
  StepStats stats;

  // The global batch's supervised positions (the loss normaliser), inputs and
  // model FLOPs (each rank's at its own batch width).
  std::int64_t tokens = 0;
  for (auto len : batch.lengths) tokens += len;
  double model_flops = model_->training_flops_per_token(batch.width) * static_cast<double>(tokens);
  if (const auto* text_items = dynamic_cast<model::TextItemVectors*>(items_.get())) {
    // The item LLM over the step's unique items (forward + backward).
    model_flops += 3 * model_->item_encoder()->forward_flops(text_items->texts(), inputs.index.unique);
  }
  const auto flops = static_cast<std::int64_t>(model_flops);
  auto t = Clock::now();
  torch::Tensor counts;
  {
    distributed::CollectiveLabel label(*comm_, "token counts");
    counts = distributed::sum_over_ranks(*comm_, torch::tensor({inputs.positions(), tokens, flops}, torch::kInt64));
  }
  stats.comm_seconds += seconds_since(t);
  const auto global_positions = counts[0].item<std::int64_t>();
  stats.tokens = counts[1].item<std::int64_t>();
  stats.flops = static_cast<double>(counts[2].item<std::int64_t>());
  stats.samples = comm_->world() > 1 ? batch.global_rows : batch.rows;

  optimizer_->zero_grad();
  // The step's item rows (collective when the table is sharded: every rank
  // looks up, with or without rows).
  t = Clock::now();
  model::ItemRows rows;
  if (sharded_ != nullptr) {
    // The route of this step's ids, started by the previous step when it knew them.
    auto pending = std::move(next_route_);
    if (pending && routed_step_ != step) {
      sharded_->finish_route(std::move(*pending));  // started for a step that did not come: completed, unused
      pending.reset();
    }
    rows =
        sharded_->lookup(pending ? sharded_->finish_route(std::move(*pending)) : sharded_->route(inputs.index.unique));
    // The next step's ids travel while this step computes.
    const auto* upcoming = next != nullptr && train_.route_ahead ? prepared_for(*next, step + 1) : nullptr;
    if (upcoming != nullptr) {
      next_route_ = std::make_unique<distributed::PendingRoute>(sharded_->start_route(upcoming->inputs.index.unique));
      routed_step_ = step + 1;
    }
  } else {
    rows = items_->lookup(inputs.index.unique);
  }
  stats.comm_seconds += comm_->world() > 1 ? seconds_since(t) : 0.0;
  torch::Tensor loss;
  if (batch.rows > 0) {
    // bf16 autocast on GPU only; CPU runs fp32.
    const bool autocast = device_.is_cuda() && train_.bf16;
    if (autocast) {
      at::autocast::set_autocast_enabled(at::kCUDA, true);
      at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    }
    loss = model::sampled_softmax_loss(*model_, inputs, rows, global_positions);
    if (autocast) {
      at::autocast::set_autocast_enabled(at::kCUDA, false);
      at::autocast::clear_cache();
    }
    loss.backward();
  }
  t = Clock::now();
  gradient_sync_->all_reduce(model_->parameters());
  {
    distributed::CollectiveLabel label(*comm_, "loss");
    stats.loss = distributed::sum_over_ranks(
                     *comm_, torch::tensor({loss.defined() ? loss.item<double>() : 0.0}, torch::kFloat64))
                     .item<double>();
  }
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
  items_->apply_gradients(rows, train_.sparse_lr * lr_scale);
  stats.comm_seconds += comm_->world() > 1 ? seconds_since(t) : 0.0;

  return stats;
}

}  // namespace longrec::train
