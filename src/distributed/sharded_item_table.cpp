#include "longrec/distributed/sharded_item_table.h"

#include <fmt/format.h>

#include "longrec/core/error.h"

namespace longrec::distributed {

ShardedItemTable::ShardedItemTable(std::int64_t num_items, std::int64_t dim, model::SparseOptimizerConfig optimizer,
                                   std::uint64_t seed, Communicator& comm, torch::Device device, torch::Dtype dtype)
    : num_items_(num_items), comm_(comm), device_(device) {
  const std::int64_t W = comm.world(), r = comm.rank();
  // Every rank must own a row (the same test on every rank: all refuse alike, none waits).
  if (W > num_items + 1) {
    throw ConfigError("model",
                      fmt::format("{} ranks share an item table of {} items (+ the padding row): every rank must own "
                                  "at least one row; run at most {} ranks",
                                  W, num_items, num_items + 1));
  }
  // Ids 0..I (0 is padding, on rank 0) with id % W == r.
  local_rows_ = r <= num_items ? (num_items - r) / W + 1 : 0;
  shard_ = std::make_unique<model::LocalItemTable>(std::max<std::int64_t>(local_rows_ - 1, 0), dim,
                                                   std::move(optimizer), seed, device, dtype);
  // The rows the whole table would have for these ids, drawn block by block.
  auto weight = torch::empty({local_rows_, dim}, torch::TensorOptions().dtype(dtype));
  const auto ids = global_ids();
  constexpr std::int64_t kSpan = 1 << 16;
  for (std::int64_t first = 0; first <= num_items; first += kSpan) {
    const auto count = std::min(kSpan, num_items + 1 - first);
    const auto rows = model::initial_item_rows(first, count, dim, seed, dtype);
    const auto mine = ids.masked_select((ids >= first) & (ids < first + count));
    if (mine.numel() == 0) continue;
    weight.index_copy_(0, mine.div(W, "floor"), rows.index_select(0, mine - first));
  }
  shard_->load_state({{"weight", weight}});
}

torch::Tensor ShardedItemTable::global_ids() const {
  return torch::arange(local_rows_, torch::kInt64) * comm_.world() + comm_.rank();
}

RoutedIds ShardedItemTable::route(const torch::Tensor& ids) { return finish_route(start_route(ids)); }

PendingRoute ShardedItemTable::start_route(const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  const auto W = comm_.world();
  PendingRoute out;
  out.ids = ids;
  auto flat = ids.reshape({-1}).to(torch::kCPU, torch::kInt64);
  const auto owners = flat.remainder(W);
  out.order = owners.argsort(/*stable=*/true);
  const auto counts = torch::bincount(owners, {}, W);
  out.send_counts.assign(counts.data_ptr<std::int64_t>(), counts.data_ptr<std::int64_t>() + W);
  CollectiveLabel label(comm_, "item ids to their owners");
  out.exchange =
      comm_.start_all_to_all_v(flat.index_select(0, out.order).to(comm_.wire_device(device_)), out.send_counts);
  return out;
}

RoutedIds ShardedItemTable::finish_route(PendingRoute pending) {
  torch::NoGradGuard no_grad;
  RoutedIds out;
  out.ids = std::move(pending.ids);
  out.send_counts = std::move(pending.send_counts);
  const auto requested = pending.exchange->wait();
  out.recv_counts = pending.exchange->recv_counts();
  out.requested_rows = requested.to(device_).div(comm_.world(), "floor");  // local row of each id asked for
  out.order = pending.order.to(device_);
  return out;
}

torch::Tensor ShardedItemTable::lookup_local(const RoutedIds& routed) {
  torch::NoGradGuard no_grad;
  return shard_->weight().index_select(0, routed.requested_rows);
}

torch::Tensor ShardedItemTable::return_rows(const RoutedIds& routed, const torch::Tensor& local) {
  torch::NoGradGuard no_grad;
  const auto wire = comm_.wire_device(device_);
  std::vector<std::int64_t> back_counts;
  CollectiveLabel label(comm_, "item rows back");
  const auto answered = comm_.all_to_all_v(local.to(wire).contiguous(), routed.recv_counts, back_counts).to(device_);
  auto out = torch::empty_like(answered);
  out.index_copy_(0, routed.order, answered);
  return out;
}

model::ItemRows ShardedItemTable::lookup(const torch::Tensor& unique_ids) { return lookup(route(unique_ids)); }

model::ItemRows ShardedItemTable::lookup(RoutedIds routed) {
  model::ItemRows out;
  out.ids = routed.ids;
  out.rows = return_rows(routed, lookup_local(routed)).requires_grad_(true);
  last_ = std::move(routed);
  return out;
}

void ShardedItemTable::apply_gradients(const model::ItemRows& gathered, double lr) {
  torch::NoGradGuard no_grad;
  auto grad = gathered.rows.grad();
  if (!grad.defined()) grad = torch::zeros_like(gathered.rows);  // still collective
  const auto wire = comm_.wire_device(device_);
  std::vector<std::int64_t> counts;
  CollectiveLabel label(comm_, "item gradients to their owners");
  const auto received =
      comm_.all_to_all_v(grad.index_select(0, last_.order).to(wire).contiguous(), last_.send_counts, counts)
          .to(device_);
  // Several ranks may send gradients for one id: sum them before the update.
  const auto [rows, inverse, ignored] = at::_unique2(last_.requested_rows, true, true, false);
  auto summed = torch::zeros({rows.size(0), received.size(1)}, received.options());
  summed.index_add_(0, inverse, received);
  shard_->apply_row_gradients(rows, summed, lr);
}

torch::Tensor ShardedItemTable::owned_ids() const { return global_ids().slice(0, first_owned_row()).to(device_); }

torch::Tensor ShardedItemTable::owned_normalized_vectors(std::int64_t begin, std::int64_t end) {
  torch::NoGradGuard no_grad;
  return model::l2_normalize(shard_->weight().slice(0, first_owned_row() + begin, first_owned_row() + end));
}

std::map<std::string, torch::Tensor> ShardedItemTable::owned_state() {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, tensor] : shard_->state()) out[name] = tensor.slice(0, first_owned_row());
  return out;
}

void ShardedItemTable::load_owned_state(const std::map<std::string, torch::Tensor>& owned) {
  std::map<std::string, torch::Tensor> local;
  for (const auto& [name, tensor] : shard_->state()) {
    const auto it = owned.find(name);
    if (it == owned.end()) continue;
    auto value = it->second.to(tensor.device(), tensor.scalar_type());
    // The padding row of rank 0 keeps its current value.
    local[name] = first_owned_row() > 0 ? torch::cat({tensor.slice(0, 0, 1), value}) : value;
  }
  shard_->load_state(local);
}

torch::Tensor ShardedItemTable::normalized_vectors(const torch::Tensor& ids) {
  const auto routed = route(ids);
  return model::l2_normalize(return_rows(routed, lookup_local(routed)));
}

}  // namespace longrec::distributed
