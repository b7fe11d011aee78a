#include "longrec/model/item_table.h"

#include <fmt/ranges.h>

#include "longrec/core/error.h"
#include "longrec/core/rng.h"

namespace longrec::model {

LocalItemTable::LocalItemTable(std::int64_t num_items, std::int64_t dim, SparseOptimizerConfig optimizer,
                               std::uint64_t seed, torch::Device device, torch::Dtype dtype)
    : num_items_(num_items), optimizer_(std::move(optimizer)) {
  if (optimizer_.kind != "rowwise_adagrad" && optimizer_.kind != "adam") {
    throw ConfigError("train.sparse_optimizer",
                      fmt::format("got '{}', expected rowwise_adagrad or adam", optimizer_.kind));
  }
  weight_ = initial_item_rows(0, num_items + 1, dim, seed, dtype).to(device);
  if (optimizer_.kind == "rowwise_adagrad") {
    accumulator_ = torch::zeros({num_items + 1}, weight_.options());
  } else {
    first_moment_ = torch::zeros_like(weight_);
    second_moment_ = torch::zeros_like(weight_);
    row_steps_ = torch::zeros({num_items + 1}, weight_.options());
  }
}

ItemRows LocalItemTable::lookup(const torch::Tensor& unique_ids) {
  ItemRows out;
  out.ids = unique_ids;
  out.rows = weight_.index_select(0, unique_ids).detach().requires_grad_(true);
  return out;
}

void LocalItemTable::apply_gradients(const ItemRows& gathered, double lr) {
  const auto& grad = gathered.rows.grad();
  if (!grad.defined() || gathered.ids.numel() == 0) return;
  apply_row_gradients(gathered.ids, grad, lr);
}

void LocalItemTable::apply_row_gradients(const torch::Tensor& ids, const torch::Tensor& grad, double lr) {
  torch::NoGradGuard no_grad;
  if (ids.numel() == 0) return;
  auto rows = weight_.index_select(0, ids);
  if (optimizer_.kind == "rowwise_adagrad") {
    auto acc = accumulator_.index_select(0, ids) + grad.pow(2).mean(1);
    accumulator_.index_copy_(0, ids, acc);
    rows -= lr * grad / (acc.sqrt().unsqueeze(1) + optimizer_.eps);
  } else {
    const double b1 = optimizer_.beta1, b2 = optimizer_.beta2;
    auto m = first_moment_.index_select(0, ids).mul_(b1).add_(grad, 1 - b1);
    auto v = second_moment_.index_select(0, ids).mul_(b2).addcmul_(grad, grad, 1 - b2);
    auto t = row_steps_.index_select(0, ids) + 1;
    first_moment_.index_copy_(0, ids, m);
    second_moment_.index_copy_(0, ids, v);
    row_steps_.index_copy_(0, ids, t);
    auto m_hat = m / (1 - torch::pow(b1, t)).unsqueeze(1);
    auto v_hat = v / (1 - torch::pow(b2, t)).unsqueeze(1);
    rows -= lr * m_hat / (v_hat.sqrt() + optimizer_.eps);
  }
  weight_.index_copy_(0, ids, rows);
}

torch::Tensor LocalItemTable::normalized_rows(std::int64_t begin, std::int64_t end) {
  torch::NoGradGuard no_grad;
  return l2_normalize(weight_.slice(0, begin, end));
}

torch::Tensor LocalItemTable::normalized_vectors(const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  return l2_normalize(weight_.index_select(0, ids.to(weight_.device())));
}

torch::Tensor LocalItemTable::owned_ids() const {
  return torch::arange(1, num_items_ + 1, torch::TensorOptions().dtype(torch::kInt64).device(weight_.device()));
}

torch::Tensor LocalItemTable::owned_normalized_vectors(std::int64_t begin, std::int64_t end) {
  return normalized_rows(begin + 1, end + 1);  // owned row k is id k + 1
}

std::map<std::string, torch::Tensor> LocalItemTable::owned_state() {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, tensor] : state()) out[name] = tensor.slice(0, 1);
  return out;
}

void LocalItemTable::load_owned_state(const std::map<std::string, torch::Tensor>& owned) {
  std::map<std::string, torch::Tensor> whole;
  for (const auto& [name, tensor] : state()) {
    const auto it = owned.find(name);
    if (it == owned.end()) continue;
    // Row 0 (padding) keeps its current value: zero for the table, untouched state.
    whole[name] = torch::cat({tensor.slice(0, 0, 1), it->second.to(tensor.device(), tensor.scalar_type())});
  }
  load_state(whole);
}

std::map<std::string, torch::Tensor> LocalItemTable::state() {
  std::map<std::string, torch::Tensor> s{{"weight", weight_}};
  if (accumulator_.defined()) s["rowwise_adagrad.accumulator"] = accumulator_;
  if (first_moment_.defined()) {
    s["adam.first_moment"] = first_moment_;
    s["adam.second_moment"] = second_moment_;
    s["adam.row_steps"] = row_steps_;
  }
  return s;
}

void LocalItemTable::load_state(const std::map<std::string, torch::Tensor>& state) {
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : this->state()) {
    const auto it = state.find(name);
    if (it == state.end()) {
      // Optimizer state is optional (evaluation loads the table alone).
      if (name == "weight") throw DataError("item embedding table missing from checkpoint");
      continue;
    }
    if (it->second.sizes() != tensor.sizes()) {
      throw DataError(fmt::format("item embedding state '{}' has shape {}, the model expects {}", name,
                                  fmt::join(it->second.sizes(), "x"), fmt::join(tensor.sizes(), "x")));
    }
    tensor.copy_(it->second);
  }
}

torch::Tensor initial_item_rows(std::int64_t first, std::int64_t count, std::int64_t dim, std::uint64_t seed,
                                torch::Dtype dtype) {
  constexpr std::int64_t kBlock = 4096;
  const auto options = torch::TensorOptions().dtype(dtype);
  auto out = torch::empty({count, dim}, options);
  for (auto block = first / kBlock; block * kBlock < first + count; ++block) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(derive_seed(seed, 0x17E3ull, block));
    const auto values = at::normal(0.0, 0.02, {kBlock, dim}, generator, options);
    const auto begin = std::max(first, block * kBlock), end = std::min(first + count, (block + 1) * kBlock);
    out.slice(0, begin - first, end - first).copy_(values.slice(0, begin - block * kBlock, end - block * kBlock));
  }
  // Row 0 is the padding item and stays zero.
  if (first == 0 && count > 0) out[0].zero_();
  return out;
}

}  // namespace longrec::model
