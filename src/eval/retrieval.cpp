#include "longrec/eval/retrieval.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <optional>

#include "longrec/core/error.h"
#include "longrec/core/log.h"
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

void excluded_items(const data::Batch& batch, HistoryExclusion policy, std::vector<std::int64_t>& offsets,
                    std::vector<std::int32_t>& items) {
  offsets.assign(1, 0);
  items.clear();
  const auto B = static_cast<std::size_t>(batch.rows);
  switch (policy) {
    case HistoryExclusion::All:
      if (!batch.seen_offsets.empty()) {
        offsets = batch.seen_offsets;
        items = batch.seen_items;
      }
      break;
    case HistoryExclusion::Window:
      // batch.items is [B, width], row r's inputs left-aligned in its first lengths[r] slots.
      for (std::size_t r = 0; r < B; ++r) {
        const auto* row = batch.items.data() + r * static_cast<std::size_t>(batch.width);
        items.insert(items.end(), row, row + batch.lengths[r]);
        offsets.push_back(static_cast<std::int64_t>(items.size()));
      }
      break;
    case HistoryExclusion::None:
      offsets.assign(B + 1, 0);
      break;
  }
  LONGREC_CHECK(offsets.size() == B + 1, "excluded items of {} rows, the batch has {}", offsets.size() - 1, B);
}

namespace {

// Gathers each rank's CSR rows (offsets [B_rank + 1], items) into the global batch's, in rank order.
void all_gather_csr(distributed::Communicator& comm, std::vector<std::int64_t>& offsets,
                    std::vector<std::int32_t>& items) {
  const auto lengths = distributed::all_gather_rows(comm, torch::tensor(offsets, torch::kInt64).diff());
  const auto all_items = distributed::all_gather_rows(comm, torch::tensor(items, torch::kInt32)).contiguous();
  const auto ends = lengths.cumsum(0).contiguous();
  offsets.assign(1, 0);
  offsets.insert(offsets.end(), ends.data_ptr<std::int64_t>(), ends.data_ptr<std::int64_t>() + ends.numel());
  items.assign(all_items.data_ptr<std::int32_t>(), all_items.data_ptr<std::int32_t>() + all_items.numel());
}

std::vector<std::int64_t> all_gather_values(distributed::Communicator& comm, const std::vector<std::int64_t>& values) {
  const auto all = distributed::all_gather_rows(comm, torch::tensor(values, torch::kInt64)).contiguous();
  return {all.data_ptr<std::int64_t>(), all.data_ptr<std::int64_t>() + all.numel()};
}

}  // namespace

Evaluation evaluate(model::SequentialRecommender& model, model::ItemVectors& items, data::HistoryLoader& loader,
                    torch::Device device, std::int64_t long_history, distributed::Communicator* comm,
                    bool keep_user_ranks) {
  EvaluateOptions options;
  options.long_history = long_history;
  options.keep_user_ranks = keep_user_ranks;
  options.progress_label.clear();
  return evaluate(model, items, loader, device, options, comm);
}

Evaluation evaluate(model::SequentialRecommender& model, model::ItemVectors& items, data::HistoryLoader& loader,
                    torch::Device device, const EvaluateOptions& options, distributed::Communicator* comm) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const bool distributed = comm != nullptr && comm->world() > 1;
  std::optional<distributed::CollectiveLabel> label;
  if (comm != nullptr) label.emplace(*comm, "evaluation");
  const auto& protocol = options.protocol;
  Evaluation result;
  result.all = RankingMetrics(protocol.cutoffs);
  result.long_histories = RankingMetrics(protocol.cutoffs);
  result.long_history = options.long_history;
  // A masked repeat ranks below every candidate, and past every cutoff (a
  // cutoff can exceed a small catalogue): a miss at each.
  const std::int64_t miss_rank = std::max<std::int64_t>(items.num_items(), protocol.cutoffs.back());
  std::optional<log::ProgressBar> progress;
  if (!options.progress_label.empty()) {
    // Off a terminal: a log line per tenth of the users, or every
    // progress_log_seconds, whichever comes first (none at 0).
    log::ProgressOptions progress_options;
    progress_options.log_lines = options.progress_log_seconds > 0;
    progress_options.line_every_seconds = options.progress_log_seconds;
    progress_options.line_min_seconds = std::min(progress_options.line_min_seconds, options.progress_log_seconds);
    progress.emplace(options.progress_label, loader.samples_per_epoch(), progress_options);
  }
  std::int64_t users_done = 0;
  loader.restore({0, 0});
  // Every rank sees every global batch (some with no rows of its own) and
  // takes part in every collective of it.
  while (auto batch = loader.next()) {
    if (batch->rows == 0 && !distributed) continue;
    const auto sequence = model::to_sequence_batch(*batch, device);
    auto queries = model::last_position_vectors(model, items, sequence);
    auto targets = sequence.targets;
    // The whole history's length of each row (the long-history slice and the
    // per-user rows count it, whatever is excluded).
    std::vector<std::int64_t> history_events(static_cast<std::size_t>(batch->rows));
    for (std::size_t r = 0; r < history_events.size(); ++r) {
      history_events[r] = batch->seen_offsets[r + 1] - batch->seen_offsets[r];
    }
    std::vector<std::int64_t> excluded_offsets;
    std::vector<std::int32_t> excluded;
    excluded_items(*batch, protocol.exclude_history, excluded_offsets, excluded);
    std::vector<std::int64_t> user_ids = batch->user_ids;
    if (distributed) {
      // The whole global batch on every rank; each scores the items it holds.
      queries = distributed::all_gather_rows(*comm, queries);
      targets = distributed::all_gather_rows(*comm, targets);
      all_gather_csr(*comm, excluded_offsets, excluded);
      history_events = all_gather_values(*comm, history_events);
      if (options.keep_user_ranks) user_ids = all_gather_values(*comm, user_ids);
    }
    const auto ranks = target_ranks(queries, targets, excluded_offsets, excluded, items, comm);
    const auto target_cpu = targets.to(torch::kCPU, torch::kInt64).contiguous();
    const auto* target_ids = target_cpu.data_ptr<std::int64_t>();
    for (std::size_t r = 0; r < ranks.size(); ++r) {
      auto rank = ranks[r];
      const auto* first = excluded.data() + excluded_offsets[r];
      const auto* last = excluded.data() + excluded_offsets[r + 1];
      if (std::find(first, last, target_ids[r]) != last) {
        ++result.repeat_targets;
        if (protocol.target_in_history == RepeatTarget::Skip) {
          ++result.skipped_users;
          continue;
        }
        if (protocol.target_in_history == RepeatTarget::Miss) rank = miss_rank;
      }
      result.all.add(rank);
      if (options.long_history > 0 && history_events[r] > options.long_history) result.long_histories.add(rank);
      if (options.keep_user_ranks) {
        result.user_ranks.push_back({user_ids[r], history_events[r], rank, target_ids[r], -1});
      }
    }
    users_done += static_cast<std::int64_t>(ranks.size());
    if (progress) progress->update(users_done);
  }
  if (progress) progress->finish();
  model.train(was_training);
  return result;
}

}  // namespace longrec::eval
