// Item vectors: what the loss, evaluation, export and serving ask of items,
// whatever makes the vectors. The item table (model/item_table.h, sharded in
// distributed/) is one implementation; a text encoder that computes an item's
// vector from its text is another, with no change to the loss or evaluation.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace longrec::model {

// x / max(||x||_2, kL2NormEpsilon) along the last dimension: the one
// normalisation of user and item vectors in training, evaluation, export and
// serving (cosine scores everywhere).
inline constexpr double kL2NormEpsilon = 1e-6;
torch::Tensor l2_normalize(const torch::Tensor& x);

// The vectors of a step's unique item ids.
struct ItemRows {
  torch::Tensor ids;   // [U] int64, unique, no padding id 0
  torch::Tensor rows;  // [U, D] raw (not normalised); in training rows.grad() holds their gradient after backward
};

class ItemVectors {
 public:
  virtual ~ItemVectors() = default;
  virtual std::int64_t num_items() const = 0;  // I: ids 1..I, 0 is padding
  virtual std::int64_t dim() const = 0;

  // Training: the raw vectors of a step's unique ids, differentiable.
  // Collective when the vectors are sharded (every rank calls it every step).
  virtual ItemRows lookup(const torch::Tensor& unique_ids) = 0;
  // After backward: the update the rows' gradients drive (a table's row-wise
  // sparse optimizer; nothing for vectors computed by dense parameters, which
  // the dense optimizer updates). Collective when sharded.
  virtual void apply_gradients(const ItemRows& rows, double lr) = 0;

  // Evaluation and serving, without gradients: L2-normalised vectors of any
  // ids in 1..I, [N, D]. Collective when sharded.
  virtual torch::Tensor normalized_vectors(const torch::Tensor& ids) = 0;
  // The items this process scores in evaluation (all of 1..I, or its shard):
  // [N] int64 ascending, and their L2-normalised vectors [end - begin, D] for
  // owned_ids()[begin, end), so that scoring goes chunk by chunk.
  virtual torch::Tensor owned_ids() const = 0;
  virtual torch::Tensor owned_normalized_vectors(std::int64_t begin, std::int64_t end) = 0;
};

// Unique non-padding ids of `ids` and, for every element of ids, its index in
// them (padding maps to an extra zero row appended at the end).
struct UniqueIds {
  torch::Tensor unique;   // [U] int64, ascending
  torch::Tensor inverse;  // ids.shape, values in [0, U]; U = padding
};
UniqueIds unique_ids(const torch::Tensor& ids);

// Vectors for ids (any shape) from looked-up rows: [..., D], zero for padding.
torch::Tensor embed(const ItemRows& rows, const UniqueIds& index);

}  // namespace longrec::model
