// The item table sharded row-wise over the ranks (design section 6): id i
// lives on rank i % W at local row i / W, so no rank holds the whole table.
// A step's unique ids are sent to their owners (all-to-all), looked up and
// sent back; after backward the rows' gradients travel the same way in
// reverse, the owner sums what several ranks sent for one id and applies the
// row-wise sparse optimizer to exactly those rows. gather and apply_gradients
// are collective: every rank calls them every step, with or without ids.
#pragma once

#include <memory>

#include "longrec/dist/communicator.h"
#include "longrec/model/item_embedding.h"

namespace longrec::dist {

class ShardedItemEmbedding final : public model::ItemEmbedding {
 public:
  ShardedItemEmbedding(std::int64_t num_items, std::int64_t dim, model::SparseOptimizerConfig optimizer,
                       std::uint64_t seed, Communicator& comm, torch::Device device = torch::kCPU,
                       torch::Dtype dtype = torch::kFloat32);

  std::int64_t num_items() const override { return num_items_; }
  std::int64_t dim() const override { return shard_->dim(); }
  model::EmbeddingRows gather(const torch::Tensor& unique_ids) override;
  void apply_gradients(const model::EmbeddingRows& rows, double lr) override;
  // Collective: rows of any ids, fetched from their owners.
  torch::Tensor normalized_rows_of(const torch::Tensor& ids) override;
  torch::Tensor owned_ids() const override;  // rank, rank + W, ... (without the padding id on rank 0)
  torch::Tensor owned_normalized_rows(std::int64_t begin, std::int64_t end) override;
  std::map<std::string, torch::Tensor> owned_state() override;
  void load_owned_state(const std::map<std::string, torch::Tensor>& state) override;
  // This rank's rows and optimizer state by local row (global_ids() names them).
  std::map<std::string, torch::Tensor> state() { return shard_->state(); }

  torch::Tensor global_ids() const;        // [local rows] int64: r, r + W, r + 2W, ... (0 on rank 0: padding)
  std::int64_t local_rows() const { return local_rows_; }

 private:
  // Where the rows of the last gather came from, to send their gradients back.
  struct Routing {
    torch::Tensor order;                    // the gathered ids sorted by owner
    std::vector<std::int64_t> send_counts;  // ids sent to each owner
    std::vector<std::int64_t> recv_counts;  // ids each rank asked this one for
    torch::Tensor requested_rows;           // local rows asked for, in receive order
  };
  torch::Tensor fetch(const torch::Tensor& ids, Routing* routing);  // raw rows of any ids [N, D]
  // Local rows before the first owned id: 1 on rank 0 (the padding row), else 0.
  std::int64_t first_owned_row() const { return comm_.rank() == 0 ? 1 : 0; }

  std::int64_t num_items_, local_rows_;
  Communicator& comm_;
  torch::Device device_;
  std::unique_ptr<model::LocalItemEmbedding> shard_;  // local row k holds global id rank + k W
  Routing last_;
};

}  // namespace longrec::dist
