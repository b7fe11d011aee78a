#include "longrec/model/item_embedding.h"

#include <fmt/ranges.h>

#include "longrec/core/error.h"
#include "longrec/core/rng.h"

namespace longrec::model {

LocalItemEmbedding::LocalItemEmbedding(std::int64_t num_items, std::int64_t dim, SparseOptimizerConfig optimizer,
                                       std::uint64_t seed, torch::Device device, torch::Dtype dtype)
    : num_items_(num_items), optimizer_(std::move(optimizer)) {
  if (optimizer_.kind != "rowwise_adagrad" && optimizer_.kind != "adam") {
    throw ConfigError("train.sparse_optimizer", fmt::format("got '{}', expected rowwise_adagrad or adam",
                                                            optimizer_.kind));
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

EmbeddingRows LocalItemEmbedding::gather(const torch::Tensor& unique_ids) {
  EmbeddingRows out;
  out.ids = unique_ids;
  out.rows = weight_.index_select(0, unique_ids).detach().requires_grad_(true);
  return out;
}

void LocalItemEmbedding::apply_gradients(const EmbeddingRows& gathered, double lr) {
  const auto& grad = gathered.rows.grad();
  if (!grad.defined() || gathered.ids.numel() == 0) return;
  apply_row_gradients(gathered.ids, grad, lr);
}

void LocalItemEmbedding::apply_row_gradients(const torch::Tensor& ids, const torch::Tensor& grad, double lr) {
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

torch::Tensor LocalItemEmbedding::normalized_rows(std::int64_t begin, std::int64_t end) {
  torch::NoGradGuard no_grad;
  auto rows = weight_.slice(0, begin, end);
  return rows / rows.norm(2, 1, true).clamp_min(1e-6);
}

torch::Tensor LocalItemEmbedding::normalized_rows_of(const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  auto rows = weight_.index_select(0, ids.to(weight_.device()));
  return rows / rows.norm(2, 1, true).clamp_min(1e-6);
}

torch::Tensor LocalItemEmbedding::owned_ids() const {
  return torch::arange(1, num_items_ + 1, torch::TensorOptions().dtype(torch::kInt64).device(weight_.device()));
}

torch::Tensor LocalItemEmbedding::owned_normalized_rows(std::int64_t begin, std::int64_t end) {
  return normalized_rows(begin + 1, end + 1);  // owned row k is id k + 1
}

std::map<std::string, torch::Tensor> LocalItemEmbedding::owned_state() {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, tensor] : state()) out[name] = tensor.slice(0, 1);
  return out;
}

void LocalItemEmbedding::load_owned_state(const std::map<std::string, torch::Tensor>& owned) {
  std::map<std::string, torch::Tensor> whole;
  for (const auto& [name, tensor] : state()) {
    const auto it = owned.find(name);
    if (it == owned.end()) continue;
    // Row 0 (padding) keeps its current value: zero for the table, untouched state.
    whole[name] = torch::cat({tensor.slice(0, 0, 1), it->second.to(tensor.device(), tensor.scalar_type())});
  }
  load_state(whole);
}

std::map<std::string, torch::Tensor> LocalItemEmbedding::state() {
  std::map<std::string, torch::Tensor> s{{"weight", weight_}};
  if (accumulator_.defined()) s["rowwise_adagrad.accumulator"] = accumulator_;
  if (first_moment_.defined()) {
    s["adam.first_moment"] = first_moment_;
    s["adam.second_moment"] = second_moment_;
    s["adam.row_steps"] = row_steps_;
  }
  return s;
}

void LocalItemEmbedding::load_state(const std::map<std::string, torch::Tensor>& state) {
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

UniqueIds unique_ids(const torch::Tensor& ids) {
  auto flat = ids.reshape({-1});
  auto [unique, inverse, counts] = at::_unique2(flat, /*sorted=*/true, /*return_inverse=*/true, false);
  UniqueIds out;
  // Sorted: padding id 0, if present, comes first; drop it and send its
  // positions to index U (an appended zero row).
  const bool has_padding = unique.numel() > 0 && unique[0].item<std::int64_t>() == 0;
  if (has_padding) {
    unique = unique.slice(0, 1);
    inverse = inverse - 1;
    inverse = torch::where(inverse < 0, torch::full_like(inverse, unique.size(0)), inverse);
  }
  out.unique = unique;
  out.inverse = inverse.reshape(ids.sizes());
  return out;
}

torch::Tensor embed(const EmbeddingRows& rows, const UniqueIds& index) {
  auto padded = torch::cat({rows.rows, torch::zeros({1, rows.rows.size(1)}, rows.rows.options())}, 0);
  auto flat = padded.index_select(0, index.inverse.reshape({-1}));
  auto shape = index.inverse.sizes().vec();
  shape.push_back(rows.rows.size(1));
  return flat.reshape(shape);
}

}  // namespace longrec::model
