#include "longrec/eval/retrieval.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "longrec/data/loader.h"
#include "longrec/model/sequence_batch.h"
#include "longrec/model/sequential_recommender.h"

namespace longrec::eval {

std::vector<std::int64_t> target_ranks(const torch::Tensor& queries, const torch::Tensor& targets,
                                       const std::vector<std::int64_t>& seen_offsets,
                                       const std::vector<std::int32_t>& seen_items, model::ItemEmbedding& items,
                                       std::int64_t item_chunk) {
  torch::NoGradGuard no_grad;
  const auto B = queries.size(0);
  const auto I = items.num_items();
  const auto device = queries.device();
  const auto chunk_scores = [&](std::int64_t begin, std::int64_t end) {
    return torch::matmul(queries, items.normalized_rows(begin, end).to(device, queries.scalar_type()).t());
  };

  // The history of each row, de-duplicated, without the target itself: (row, id) pairs.
  std::vector<std::int64_t> seen_row, seen_id;
  const auto target_cpu = targets.to(torch::kCPU, torch::kInt64).contiguous();
  const auto* target_ids = target_cpu.data_ptr<std::int64_t>();
  for (std::int64_t r = 0; r < B; ++r) {
    std::vector<std::int64_t> seen(seen_items.begin() + seen_offsets[r], seen_items.begin() + seen_offsets[r + 1]);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (auto id : seen) {
      if (id == target_ids[r]) continue;
      seen_row.push_back(r);
      seen_id.push_back(id);
    }
  }
  const auto rows_t = torch::tensor(seen_row, torch::kInt64).to(device);
  const auto ids_t = torch::tensor(seen_id, torch::kInt64).to(device);

  // Pass 1: each target's score, taken from the same matrix product as every
  // other item's (so that rounding never ranks a target above itself).
  auto target_scores = torch::zeros({B}, queries.options());
  for (std::int64_t begin = 1; begin <= I; begin += item_chunk) {
    const auto end = std::min(I + 1, begin + item_chunk);
    auto in_chunk = (targets >= begin) & (targets < end);
    if (!in_chunk.any().item<bool>()) continue;
    auto scores = chunk_scores(begin, end);
    auto picked = scores.gather(1, (targets - begin).clamp(0, end - begin - 1).unsqueeze(1)).squeeze(1);
    target_scores = torch::where(in_chunk, picked, target_scores);
  }
  // Pass 2: count the items above the target, the history masked out.
  auto above = torch::zeros({B}, torch::TensorOptions().dtype(torch::kInt64).device(device));
  for (std::int64_t begin = 1; begin <= I; begin += item_chunk) {
    const auto end = std::min(I + 1, begin + item_chunk);
    auto scores = chunk_scores(begin, end);
    if (ids_t.numel() > 0) {
      auto here = (ids_t >= begin) & (ids_t < end);
      auto r = rows_t.masked_select(here), c = ids_t.masked_select(here) - begin;
      scores.index_put_({r, c}, -std::numeric_limits<float>::infinity());
    }
    above += (scores > target_scores.unsqueeze(1)).sum(1);
  }
  auto ranks_cpu = above.to(torch::kCPU).contiguous();
  return std::vector<std::int64_t>(ranks_cpu.data_ptr<std::int64_t>(), ranks_cpu.data_ptr<std::int64_t>() + B);
}

std::map<std::string, double> Evaluation::values() const {
  auto out = all.values();
  if (long_history > 0) {
    const auto prefix = fmt::format("hist>{}/", long_history);
    for (const auto& [key, value] : long_histories.values()) out[prefix + key] = value;
    out[prefix + "users"] = static_cast<double>(long_histories.count());
  }
  return out;
}

Evaluation evaluate(model::SequentialRecommender& model, model::ItemEmbedding& items, data::HistoryLoader& loader,
                    torch::Device device, std::int64_t long_history) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  Evaluation result;
  result.long_history = long_history;
  loader.restore({0, 0});
  while (auto batch = loader.next()) {
    if (batch->rows == 0) continue;
    const auto sequence = model::to_sequence_batch(*batch, device);
    auto queries = model::last_position_vectors(model, items, sequence);
    const auto ranks = target_ranks(queries, sequence.targets, batch->seen_offsets, batch->seen_items, items);
    for (std::size_t r = 0; r < ranks.size(); ++r) {
      result.all.add(ranks[r]);
      // seen_* hold the whole history, not only the model's window.
      if (long_history > 0 && batch->seen_offsets[r + 1] - batch->seen_offsets[r] > long_history) {
        result.long_histories.add(ranks[r]);
      }
    }
  }
  model.train(was_training);
  return result;
}

}  // namespace longrec::eval
