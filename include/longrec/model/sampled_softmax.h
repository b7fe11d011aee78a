// The training loss: sampled softmax over cosine scores, plain math on the
// user vectors and the looked-up item rows of a step (model/step_inputs.h).
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "longrec/model/item_vectors.h"
#include "longrec/model/sequential_recommender.h"
#include "longrec/model/step_inputs.h"

namespace longrec::model {

// The loss of one training batch and what it touched.
struct TrainingLoss {
  torch::Tensor loss;          // scalar: sum over supervised positions / loss_positions
  std::int64_t positions = 0;  // supervised positions (targets > 0)
  ItemRows rows;               // looked-up item rows (their grad after backward)
};

// Sampled softmax at every position with a target: logits are
// [cos(h, e_target), cos(h, e_neg_1..m)] / temperature, label 0, plus
// optionally the batch's other targets; a negative equal to the target is
// masked out. `rows` are the vectors of inputs.index.unique (ItemVectors::lookup).
// The loss is the sum over this batch's positions divided by
// `loss_positions` (0: this batch's count, i.e. the mean; W ranks pass the
// global count, so that their summed gradients are the gradient of the
// global batch's mean).
torch::Tensor sampled_softmax_loss(SequentialRecommender& model, const StepInputs& inputs, const ItemRows& rows,
                                   std::int64_t loss_positions = 0);

// The three stages in one call (tests, small tools): prepare, look up, loss.
TrainingLoss sampled_softmax_loss(SequentialRecommender& model, ItemVectors& items, const SequenceBatch& batch,
                                  std::uint64_t negatives_seed, std::int64_t loss_positions = 0);

}  // namespace longrec::model
