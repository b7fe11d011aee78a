// One process's training state on a device: the model, the item table with
// its sparse optimizer, the dense optimizer; and one optimisation step. Shared
// by the training loop and `longrec bench train`.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "longrec/data/loader.h"
#include "longrec/model/item_embedding.h"
#include "longrec/model/sequential_recommender.h"
#include "longrec/train/train_config.h"

namespace longrec::train {

struct StepStats {
  double loss = 0;
  double grad_norm = 0;
  std::int64_t samples = 0;
  std::int64_t tokens = 0;  // input positions
  double flops = 0;         // model FLOPs of the step (forward + backward)
};

class TrainingSession {
 public:
  TrainingSession(const TrainConfig& train, const model::ModelConfig& model, std::int64_t num_items,
                  torch::Device device);

  // One step on `batch` at learning-rate multiplier `lr_scale`; `step` seeds
  // the negatives. Throws Error (after nothing was updated) on a non-finite
  // loss or gradient, naming the tensor.
  StepStats step(const data::Batch& batch, std::int64_t step, double lr_scale);

  model::SequentialRecommender& model() { return *model_; }
  model::LocalItemEmbedding& items() { return *items_; }
  torch::optim::AdamW& optimizer() { return *optimizer_; }
  torch::Device device() const { return device_; }

 private:
  TrainConfig train_;
  model::ModelConfig config_;
  torch::Device device_;
  std::shared_ptr<model::SequentialRecommender> model_;
  std::unique_ptr<model::LocalItemEmbedding> items_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
};

// auto -> cuda when a GPU is visible, else cpu; throws ConfigError("train.device") when cuda is asked without one.
torch::Device pick_device(const std::string& requested);

}  // namespace longrec::train
