// The item table sharded row-wise over the ranks (design section 6): id i
// lives on rank i % W at local row i / W, so no rank holds the whole table.
//
// A lookup is three stages, as torchrec's row-wise sharding does it:
//   route         the step's unique ids go to their owners (all-to-all of ids)
//   lookup_local  each owner reads the rows it was asked for
//   return_rows   the rows travel back (all-to-all of rows), in the asker's order
// After backward the rows' gradients travel the same way in reverse, the
// owner sums what several ranks sent for one id and applies the row-wise
// sparse optimizer to exactly those rows. Every stage is collective: every
// rank calls it every step, with or without ids. route depends on the ids
// alone, so it can start a step early (start_route, finish_route) and travel
// while the previous step computes; lookup_local reads the rows, so it must
// come after the previous step's update.
#pragma once

#include <memory>
#include <vector>

#include "longrec/distributed/communicator.h"
#include "longrec/model/item_table.h"

namespace longrec::distributed {

// Where the ids of one lookup went, to bring their rows (and later their
// gradients) back.
struct RoutedIds {
  torch::Tensor ids;                      // [U] the ids asked for, in the caller's order
  torch::Tensor order;                    // the ids sorted by owner (stable)
  std::vector<std::int64_t> send_counts;  // ids sent to each owner
  std::vector<std::int64_t> recv_counts;  // ids each rank asked this one for
  torch::Tensor requested_rows;           // local rows asked for, in receive order
};

// A route whose id exchange is under way (ShardedItemTable::start_route).
struct PendingRoute {
  torch::Tensor ids, order;
  std::vector<std::int64_t> send_counts;
  std::unique_ptr<PendingExchange> exchange;
};

class ShardedItemTable final : public model::ItemTable {
 public:
  ShardedItemTable(std::int64_t num_items, std::int64_t dim, model::SparseOptimizerConfig optimizer, std::uint64_t seed,
                   Communicator& comm, torch::Device device = torch::kCPU, torch::Dtype dtype = torch::kFloat32);

  std::int64_t num_items() const override { return num_items_; }
  std::int64_t dim() const override { return shard_->dim(); }
  // route + lookup_local + return_rows; the rows are a leaf that requires grad.
  model::ItemRows lookup(const torch::Tensor& unique_ids) override;
  // The same with the routing done beforehand (it must be of these ids).
  model::ItemRows lookup(RoutedIds routed);
  void apply_gradients(const model::ItemRows& rows, double lr) override;
  // Collective: vectors of any ids, fetched from their owners.
  torch::Tensor normalized_vectors(const torch::Tensor& ids) override;
  torch::Tensor owned_ids() const override;  // rank, rank + W, ... (without the padding id on rank 0)
  torch::Tensor owned_normalized_vectors(std::int64_t begin, std::int64_t end) override;
  std::map<std::string, torch::Tensor> owned_state() override;
  void load_owned_state(const std::map<std::string, torch::Tensor>& state) override;
  // This rank's rows and optimizer state by local row (global_ids() names them).
  std::map<std::string, torch::Tensor> state() { return shard_->state(); }

  // The three stages of a lookup (collective each). route = finish_route(start_route(ids)).
  RoutedIds route(const torch::Tensor& ids);
  PendingRoute start_route(const torch::Tensor& ids);
  RoutedIds finish_route(PendingRoute pending);
  torch::Tensor lookup_local(const RoutedIds& routed);                             // [requested, D]
  torch::Tensor return_rows(const RoutedIds& routed, const torch::Tensor& local);  // [U, D] in routed.ids order

  torch::Tensor global_ids() const;  // [local rows] int64: r, r + W, r + 2W, ... (0 on rank 0: padding)
  std::int64_t local_rows() const { return local_rows_; }

 private:
  // Local rows before the first owned id: 1 on rank 0 (the padding row), else 0.
  std::int64_t first_owned_row() const { return comm_.rank() == 0 ? 1 : 0; }

  std::int64_t num_items_, local_rows_;
  Communicator& comm_;
  torch::Device device_;
  std::unique_ptr<model::LocalItemTable> shard_;  // local row k holds global id rank + k W
  RoutedIds last_;                                // the routing of the last training lookup
};

}  // namespace longrec::distributed
