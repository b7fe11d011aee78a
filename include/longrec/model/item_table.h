// The item table: one learned row per item id, the ItemVectors of the ID
// backbones (HSTU, SASRec). It owns its storage, its row-wise sparse
// optimizer and its checkpoint state; LocalItemTable holds all rows in this
// process, distributed::ShardedItemTable one shard per rank.
//
// A training step is three stages (as in torchrec): look up the step's unique
// ids as a leaf tensor of rows, compute with them (autograd fills the rows'
// gradient), and apply the row-wise sparse optimizer to exactly those rows.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

#include "longrec/model/item_vectors.h"

namespace longrec::model {

struct SparseOptimizerConfig {
  std::string kind = "rowwise_adagrad";  // rowwise_adagrad | adam
  double lr = 0.01;
  double eps = 1e-8;
  double beta1 = 0.9, beta2 = 0.98;  // adam
};

class ItemTable : public ItemVectors {
 public:
  // Table and optimizer state of the owned rows, by name: [N, ...] each, in
  // owned_ids() order (checkpoints save them by global id, so that a table
  // can be re-sharded on load).
  virtual std::map<std::string, torch::Tensor> owned_state() = 0;
  // The reverse: every name of owned_state() with N rows; optimizer state may
  // be absent (evaluation loads the table alone), the table may not.
  virtual void load_owned_state(const std::map<std::string, torch::Tensor>& state) = 0;
};

// The whole table in this process, with its row-wise optimizer state:
// rowwise_adagrad keeps one accumulator per row (mean of squared gradients),
// adam keeps per-element moments and a per-row step count (bias correction for
// rows that are touched rarely).
class LocalItemTable final : public ItemTable {
 public:
  LocalItemTable(std::int64_t num_items, std::int64_t dim, SparseOptimizerConfig optimizer, std::uint64_t seed,
                 torch::Device device = torch::kCPU, torch::Dtype dtype = torch::kFloat32);
  std::int64_t num_items() const override { return num_items_; }
  std::int64_t dim() const override { return weight_.size(1); }
  ItemRows lookup(const torch::Tensor& unique_ids) override;
  void apply_gradients(const ItemRows& rows, double lr) override;
  torch::Tensor normalized_vectors(const torch::Tensor& ids) override;
  torch::Tensor owned_ids() const override;  // 1..I
  torch::Tensor owned_normalized_vectors(std::int64_t begin, std::int64_t end) override;
  std::map<std::string, torch::Tensor> owned_state() override;
  void load_owned_state(const std::map<std::string, torch::Tensor>& state) override;

  // L2-normalised rows of ids [begin, end).
  torch::Tensor normalized_rows(std::int64_t begin, std::int64_t end);
  // The whole state, row i = id i (row 0 the padding item): [I+1, ...] each.
  std::map<std::string, torch::Tensor> state();
  void load_state(const std::map<std::string, torch::Tensor>& state);
  torch::Tensor& weight() { return weight_; }  // [I+1, D], row 0 zero
  // The sparse optimizer step on explicit rows: ids [U] unique, grad [U, D].
  void apply_row_gradients(const torch::Tensor& ids, const torch::Tensor& grad, double lr);

 private:
  std::int64_t num_items_;
  SparseOptimizerConfig optimizer_;
  torch::Tensor weight_;
  torch::Tensor accumulator_;                               // adagrad: [I+1]
  torch::Tensor first_moment_, second_moment_, row_steps_;  // adam: [I+1, D], [I+1, D], [I+1]
};

// The initial rows of ids [first, first + count) (global ids; id 0 gives a
// zero row): N(0, 0.02) as the HSTU reference, drawn per block of 4,096 ids
// from (seed, block) so that any shard of the table can draw its own rows
// and get exactly the values the whole table has.
torch::Tensor initial_item_rows(std::int64_t first, std::int64_t count, std::int64_t dim, std::uint64_t seed,
                                torch::Dtype dtype = torch::kFloat32);

}  // namespace longrec::model
