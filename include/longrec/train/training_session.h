// One rank's training state on a device: the model (dense parameters,
// replicated), the item table with its sparse optimizer (whole, or this
// rank's shard when the world has more than one rank), the dense optimizer;
// and one optimisation step of the global batch. Shared by the training loop
// and the benchmarks.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>

#include "longrec/core/error.h"
#include "longrec/data/batch.h"
#include "longrec/distributed/communicator.h"
#include "longrec/distributed/gradient_sync.h"
#include "longrec/model/item_table.h"
#include "longrec/model/sequential_recommender.h"
#include "longrec/train/train_config.h"

namespace longrec::distributed {
class ShardedItemTable;
struct PendingRoute;
}  // namespace longrec::distributed

namespace longrec::train {

// A non-finite loss or gradient: thrown by every rank of the step alike (the
// values are global), so that the trainer may checkpoint collectively first.
class NonFiniteError : public Error {
 public:
  using Error::Error;
};

// Figures of the global batch (all ranks), identical on every rank.
struct StepStats {
  double loss = 0;
  double grad_norm = 0;
  std::int64_t samples = 0;
  std::int64_t tokens = 0;  // input positions
  double flops = 0;         // model FLOPs of the step (forward + backward), all ranks
  double comm_seconds = 0;  // this rank's time in collectives (step figures, gradients, item rows)
};

class TrainingSession {
 public:
  // comm: the ranks this session trains with (null: a world of one).
  // item_texts: the item LLM's inputs, required by model.backbone = hllm (its item vectors are
  // computed from them: model::TextItemVectors, not a table).
  TrainingSession(const TrainConfig& train, const model::ModelConfig& model, std::int64_t num_items,
                  torch::Device device, distributed::Communicator* comm = nullptr,
                  std::shared_ptr<const model::ItemTextInputs> item_texts = nullptr);

  // One step on this rank's rows of a global batch (possibly none; every rank
  // calls it every step) at learning-rate multiplier `lr_scale`. The loss is
  // the mean over the global batch's positions: each rank divides its sum by
  // the global count and the dense gradients are summed over ranks, so W ranks
  // compute what one process computes on the whole batch. `step` seeds the
  // negatives (per sample, see sampled_softmax_loss) and dropout (per rank).
  // Throws NonFiniteError (on every rank, after nothing was updated) on a
  // non-finite loss or gradient, naming the tensor.
  // `next`: the batch of step + 1 when that step will run (every rank passes
  // one or none alike). On W ranks with train.route_ahead its item ids start
  // travelling to their owners while this step computes (collective).
  StepStats step(const data::Batch& batch, std::int64_t step, double lr_scale, const data::Batch* next = nullptr);
  ~TrainingSession();

  // For HistoryLoader::set_batch_preparer: prepares each batch's step inputs
  // (negatives, unique item ids) on the loader's thread, for step
  // epoch * batches_per_epoch + global index (what the training loop counts).
  // step() uses them when they are of its step and prepares them itself
  // otherwise: the result is the same, only the work moves.
  std::function<void(data::Batch&)> batch_preparer(std::int64_t batches_per_epoch) const;
  // Whether the loader's thread prepared `batch` for this step.
  static bool is_prepared_for(const data::Batch& batch, std::int64_t step);

  model::SequentialRecommender& model() { return *model_; }
  model::ItemTable& items() { return *items_; }
  distributed::Communicator& comm() { return *comm_; }
  torch::optim::AdamW& optimizer() { return *optimizer_; }
  torch::Device device() const { return device_; }

 private:
  TrainConfig train_;
  model::ModelConfig config_;
  torch::Device device_;
  std::unique_ptr<distributed::Communicator> own_comm_;  // when none was given
  distributed::Communicator* comm_;
  std::shared_ptr<model::SequentialRecommender> model_;
  std::unique_ptr<model::ItemTable> items_;
  distributed::ShardedItemTable* sharded_ = nullptr;  // items_ when sharded
  // The id exchange of step routed_step_, started by the step before it.
  std::int64_t routed_step_ = -1;
  std::unique_ptr<distributed::PendingRoute> next_route_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::unique_ptr<distributed::GradientSync> gradient_sync_;
};

// auto -> cuda when a GPU is visible, else cpu; throws ConfigError("train.device") when cuda is asked without one.
// With several GPUs on a node, rank `local_rank` takes GPU local_rank % count.
torch::Device pick_device(const std::string& requested, int local_rank = 0);

}  // namespace longrec::train
