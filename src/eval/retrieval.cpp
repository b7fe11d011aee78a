#include "longrec/eval/retrieval.h"

#include <algorithm>

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
  auto target_rows = torch::zeros({B, queries.size(1)}, queries.options());
  for (std::int64_t begin = 1; begin <= I; begin += item_chunk) {
    const auto end = std::min(I + 1, begin + item_chunk);
    auto rows = items.normalized_rows(begin, end).to(queries.device(), queries.scalar_type());
    auto in_chunk = (targets >= begin) & (targets < end);
    if (in_chunk.any().item<bool>()) {
      auto local = (targets - begin).clamp(0, end - begin - 1);
      auto picked = rows.index_select(0, local);
      target_rows = torch::where(in_chunk.unsqueeze(1), picked, target_rows);
    }
  }
  auto target_scores = (queries * target_rows).sum(1, true);  // [B, 1]

  auto above = torch::zeros({B}, torch::TensorOptions().dtype(torch::kInt64).device(queries.device()));
  for (std::int64_t begin = 1; begin <= I; begin += item_chunk) {
    const auto end = std::min(I + 1, begin + item_chunk);
    auto scores = torch::matmul(queries, items.normalized_rows(begin, end).to(queries.device(), queries.scalar_type()).t());
    above += (scores > target_scores).sum(1);
  }
  // Items of the history (other than the target) that scored above it do not
  // count: score the de-duplicated history of every row in one pass.
  std::vector<std::int64_t> seen_ids, seen_row;
  const auto target_cpu = targets.to(torch::kCPU);
  for (std::int64_t r = 0; r < B; ++r) {
    std::vector<std::int64_t> seen(seen_items.begin() + seen_offsets[r], seen_items.begin() + seen_offsets[r + 1]);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    const auto target = target_cpu[r].item<std::int64_t>();
    for (auto id : seen) {
      if (id == target) continue;
      seen_ids.push_back(id);
      seen_row.push_back(r);
    }
  }
  if (!seen_ids.empty()) {
    const auto device = queries.device();
    auto ids = torch::tensor(seen_ids, torch::kInt64).to(device);
    auto row = torch::tensor(seen_row, torch::kInt64).to(device);
    auto rows = items.normalized_rows_of(ids).to(device, queries.scalar_type());
    auto scores = (rows * queries.index_select(0, row)).sum(1);
    auto is_above = (scores > target_scores.squeeze(1).index_select(0, row)).to(torch::kInt64);
    above -= torch::zeros_like(above).index_add_(0, row, is_above);
  }
  auto ranks_cpu = above.to(torch::kCPU).contiguous();
  return std::vector<std::int64_t>(ranks_cpu.data_ptr<std::int64_t>(), ranks_cpu.data_ptr<std::int64_t>() + B);
}

RankingMetrics evaluate(model::SequentialRecommender& model, model::ItemEmbedding& items, data::HistoryLoader& loader,
                        torch::Device device) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  RankingMetrics metrics;
  loader.restore({0, 0});
  while (auto batch = loader.next()) {
    if (batch->rows == 0) continue;
    const auto sequence = model::to_sequence_batch(*batch, device);
    auto queries = model::last_position_vectors(model, items, sequence);
    for (auto rank : target_ranks(queries, sequence.targets, batch->seen_offsets, batch->seen_items, items)) {
      metrics.add(rank);
    }
  }
  model.train(was_training);
  return metrics;
}

}  // namespace longrec::eval
