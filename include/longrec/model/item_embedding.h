// The item-embedding table behind one interface, so that the trainer works
// the same with the whole table in one process (LocalItemEmbedding) and with
// a table sharded over ranks (dist module).
//
// A training step is three stages (as in torchrec): gather the step's unique
// ids into a leaf tensor of rows, compute with them (autograd fills the rows'
// gradient), and apply the row-wise sparse optimizer to exactly those rows.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

namespace longrec::model {

// Rows of the table that one step reads. rows is a leaf that requires grad;
// after backward, rows.grad() holds the gradient of each id's row.
struct EmbeddingRows {
  torch::Tensor ids;   // [U] int64, unique, no padding id 0
  torch::Tensor rows;  // [U, D]
};

struct SparseOptimizerConfig {
  std::string kind = "rowwise_adagrad";  // rowwise_adagrad | adam
  double lr = 0.01;
  double eps = 1e-8;
  double beta1 = 0.9, beta2 = 0.98;  // adam
};

class ItemEmbedding {
 public:
  virtual ~ItemEmbedding() = default;
  virtual std::int64_t num_items() const = 0;  // I: ids 1..I, 0 is padding
  virtual std::int64_t dim() const = 0;
  virtual EmbeddingRows gather(const torch::Tensor& unique_ids) = 0;
  // Sparse optimizer step on the rows gathered for this step, at learning rate lr.
  virtual void apply_gradients(const EmbeddingRows& rows, double lr) = 0;
  // L2-normalised rows of the given ids (any ids in 1..I): [N, D]. Collective
  // when the table is sharded.
  virtual torch::Tensor normalized_rows_of(const torch::Tensor& ids) = 0;

  // The rows this process holds (all of 1..I, or one shard): for
  // checkpoints (saved by global id, so that they can be re-sharded) and for
  // evaluation, where each process scores the items it holds.
  virtual torch::Tensor owned_ids() const = 0;  // [N] int64, ascending, no padding id
  // L2-normalised rows [end - begin, D] of owned_ids()[begin, end).
  virtual torch::Tensor owned_normalized_rows(std::int64_t begin, std::int64_t end) = 0;
  // Table and optimizer state of the owned rows, by name: [N, ...] each, in owned_ids() order.
  virtual std::map<std::string, torch::Tensor> owned_state() = 0;
  // The reverse: every name of owned_state() with N rows; optimizer state may
  // be absent (evaluation loads the table alone), the table may not.
  virtual void load_owned_state(const std::map<std::string, torch::Tensor>& state) = 0;
};

// The whole table in this process, with its row-wise optimizer state:
// rowwise_adagrad keeps one accumulator per row (mean of squared gradients),
// adam keeps per-element moments and a per-row step count (bias correction for
// rows that are touched rarely).
class LocalItemEmbedding final : public ItemEmbedding {
 public:
  LocalItemEmbedding(std::int64_t num_items, std::int64_t dim, SparseOptimizerConfig optimizer, std::uint64_t seed,
                     torch::Device device = torch::kCPU, torch::Dtype dtype = torch::kFloat32);
  std::int64_t num_items() const override { return num_items_; }
  std::int64_t dim() const override { return weight_.size(1); }
  EmbeddingRows gather(const torch::Tensor& unique_ids) override;
  void apply_gradients(const EmbeddingRows& rows, double lr) override;
  torch::Tensor normalized_rows_of(const torch::Tensor& ids) override;
  torch::Tensor owned_ids() const override;  // 1..I
  torch::Tensor owned_normalized_rows(std::int64_t begin, std::int64_t end) override;
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
  torch::Tensor accumulator_;            // adagrad: [I+1]
  torch::Tensor first_moment_, second_moment_, row_steps_;  // adam: [I+1, D], [I+1, D], [I+1]
};

// The initial rows of ids [first, first + count) (global ids; id 0 gives a
// zero row): N(0, 0.02) as the HSTU reference, drawn per block of 4,096 ids
// from (seed, block) so that any shard of the table can draw its own rows
// and get exactly the values the whole table has.
torch::Tensor initial_item_rows(std::int64_t first, std::int64_t count, std::int64_t dim, std::uint64_t seed,
                                torch::Dtype dtype = torch::kFloat32);

// Unique non-padding ids of `ids` and, for every element of ids, its index in
// them (padding maps to an extra zero row appended at the end).
struct UniqueIds {
  torch::Tensor unique;   // [U] int64
  torch::Tensor inverse;  // ids.shape, values in [0, U]; U = padding
};
UniqueIds unique_ids(const torch::Tensor& ids);

// Embeddings for ids (any shape) from gathered rows: [..., D], zero for padding.
torch::Tensor embed(const EmbeddingRows& rows, const UniqueIds& index);

}  // namespace longrec::model
