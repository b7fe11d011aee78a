#include "longrec/eval/retrieval.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <optional>

#include "longrec/data/loader.h"
#include "longrec/distributed/communicator.h"
#include "longrec/model/sequence_batch.h"
#include "longrec/model/sequential_recommender.h"

namespace longrec::eval {

std::vector<std::int64_t> target_ranks(const torch::Tensor& queries, const torch::Tensor& targets,
                                       const std::vector<std::int64_t>& seen_offsets,
                                       const std::vector<std::int32_t>& seen_items, model::ItemVectors& items,
                                       distributed::Communicator* comm, std::int64_t item_chunk) {
  torch::NoGradGuard no_grad;
  const auto B = queries.size(0);
  const auto device = queries.device();
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  // The items this process scores (all of them, or its shard), and where each
  // id sits among them (-1: held by another rank).
  const auto owned = items.owned_ids().to(device);
  const auto N = owned.size(0);
  auto owned_index = torch::full({items.num_items() + 1}, -1, i64);
  owned_index.index_put_({owned}, torch::arange(N, i64));
  const auto chunk_scores = [&](std::int64_t begin, std::int64_t end) {
    return torch::matmul(queries, items.owned_normalized_vectors(begin, end).to(device, queries.scalar_type()).t());
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
  // Seen items held here, as (row, owned position).
  auto rows_t = torch::tensor(seen_row, torch::kInt64).to(device);
  auto cols_t = owned_index.index_select(0, torch::tensor(seen_id, torch::kInt64).to(device));
  const auto here = cols_t >= 0;
  rows_t = rows_t.masked_select(here);
  cols_t = cols_t.masked_select(here);

  // Pass 1: each target's score, taken from the same matrix product as every
  // other item's (so that rounding never ranks a target above itself), on the
  // rank that holds the target; the others add zero.
  const auto target_cols = owned_index.index_select(0, targets.to(device, torch::kInt64));
  auto target_scores = torch::zeros({B}, queries.options());
  for (std::int64_t begin = 0; begin < N; begin += item_chunk) {
    const auto end = std::min(N, begin + item_chunk);
    auto in_chunk = (target_cols >= begin) & (target_cols < end);
    if (!in_chunk.any().item<bool>()) continue;
    auto scores = chunk_scores(begin, end);
    auto picked = scores.gather(1, (target_cols - begin).clamp(0, end - begin - 1).unsqueeze(1)).squeeze(1);
    target_scores = torch::where(in_chunk, picked, target_scores);
  }
  if (comm != nullptr) target_scores = distributed::sum_over_ranks(*comm, target_scores);
  // Pass 2: count the items above the target, the history masked out.
  auto above = torch::zeros({B}, i64);
  for (std::int64_t begin = 0; begin < N; begin += item_chunk) {
    const auto end = std::min(N, begin + item_chunk);
    auto scores = chunk_scores(begin, end);
    if (cols_t.numel() > 0) {
      auto in_chunk = (cols_t >= begin) & (cols_t < end);
      scores.index_put_({rows_t.masked_select(in_chunk), cols_t.masked_select(in_chunk) - begin},
                        -std::numeric_limits<float>::infinity());
    }
    above += (scores > target_scores.unsqueeze(1)).sum(1);
  }
  if (comm != nullptr) above = distributed::sum_over_ranks(*comm, above);
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

Evaluation evaluate(model::SequentialRecommender& model, model::ItemVectors& items, data::HistoryLoader& loader,
                    torch::Device device, std::int64_t long_history, distributed::Communicator* comm,
                    bool keep_user_ranks) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const bool distributed = comm != nullptr && comm->world() > 1;
  std::optional<distributed::CollectiveLabel> label;
  if (comm != nullptr) label.emplace(*comm, "evaluation");
  Evaluation result;
  result.long_history = long_history;
  loader.restore({0, 0});
  // Every rank sees every global batch (some with no rows of its own) and
  // takes part in every collective of it.
  while (auto batch = loader.next()) {
    if (batch->rows == 0 && !distributed) continue;
    const auto sequence = model::to_sequence_batch(*batch, device);
    auto queries = model::last_position_vectors(model, items, sequence);
    auto targets = sequence.targets;
    std::vector<std::int64_t> seen_offsets = batch->seen_offsets;
    std::vector<std::int32_t> seen_items = batch->seen_items;
    std::vector<std::int64_t> user_ids = batch->user_ids;
    if (seen_offsets.empty()) seen_offsets.push_back(0);
    if (distributed) {
      // The whole global batch on every rank; each scores the items it holds.
      queries = distributed::all_gather_rows(*comm, queries);
      targets = distributed::all_gather_rows(*comm, targets);
      const auto lengths = distributed::all_gather_rows(*comm, torch::tensor(seen_offsets, torch::kInt64).diff());
      auto all_seen = distributed::all_gather_rows(*comm, torch::tensor(seen_items, torch::kInt32));
      const auto ends = lengths.cumsum(0).contiguous();
      seen_offsets.assign(1, 0);
      seen_offsets.insert(seen_offsets.end(), ends.data_ptr<std::int64_t>(),
                          ends.data_ptr<std::int64_t>() + ends.numel());
      seen_items.assign(all_seen.data_ptr<std::int32_t>(), all_seen.data_ptr<std::int32_t>() + all_seen.numel());
      if (keep_user_ranks) {
        const auto all_users = distributed::all_gather_rows(*comm, torch::tensor(user_ids, torch::kInt64)).contiguous();
        user_ids.assign(all_users.data_ptr<std::int64_t>(), all_users.data_ptr<std::int64_t>() + all_users.numel());
      }
    }
    const auto ranks = target_ranks(queries, targets, seen_offsets, seen_items, items, comm);
    std::vector<std::int64_t> target_ids;
    if (keep_user_ranks) {
      const auto t = targets.to(torch::kCPU, torch::kInt64).contiguous();
      target_ids.assign(t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + t.numel());
    }
    for (std::size_t r = 0; r < ranks.size(); ++r) {
      result.all.add(ranks[r]);
      // seen_* hold the whole history, not only the model's window.
      const auto history_events = seen_offsets[r + 1] - seen_offsets[r];
      if (long_history > 0 && history_events > long_history) result.long_histories.add(ranks[r]);
      if (keep_user_ranks) {
        result.user_ranks.push_back({user_ids[r], history_events, ranks[r], target_ids[r], -1});
      }
    }
  }
  model.train(was_training);
  return result;
}

}  // namespace longrec::eval
