// A training step's inputs, decided before the model runs: the batch as
// tensors, its negatives and the unique item ids the step reads (inputs,
// targets, negatives). In training they are prepared on the loader's thread
// (train::TrainingSession::batch_preparer), so that sampling and
// de-duplication overlap the previous step's compute, and the item lookup
// (route ids to their owners, look up, return rows) is separate from the loss.
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "longrec/model/item_vectors.h"
#include "longrec/model/model_config.h"
#include "longrec/model/sequence_batch.h"

namespace longrec::model {

struct StepInputs {
  SequenceBatch batch;
  torch::Tensor supervised;  // [P] int64: the flat (row-major) positions with a target (> 0)
  torch::Tensor positives;   // [P] the targets of those positions
  torch::Tensor negatives;   // per_position: [P, K]; shared: [K]; none: [0]
  // Unique ids of [inputs (B*L), positives (P), negatives (flat)] and each one's index in them.
  UniqueIds index;

  std::int64_t positions() const { return positives.size(0); }  // P
  // The index entries of the inputs, the positives and the negatives.
  UniqueIds inputs_index() const;
  UniqueIds positives_index() const;
  UniqueIds negatives_index() const;
  StepInputs to(torch::Device device) const;
};

// Negatives are uniform over 1..I: one pool of K drawn from
// `negatives_seed` (shared), or K per supervised position drawn row by row
// from (negatives_seed, sample key), so that a row gets the same negatives in
// any batch and on any rank (per_position).
StepInputs prepare_step_inputs(SequenceBatch batch, const ModelConfig& config, std::int64_t num_items,
                               std::uint64_t negatives_seed);

// The seed of step `step`'s negatives: the same on every rank and for any world size.
std::uint64_t negatives_seed(const ModelConfig& config, std::int64_t step);

}  // namespace longrec::model
