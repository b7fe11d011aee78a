#include "longrec/model/sequence_batch.h"

#include "longrec/core/rng.h"
#include "longrec/data/batch.h"

namespace longrec::model {

SequenceBatch slice_rows(const SequenceBatch& batch, std::int64_t begin, std::int64_t end) {
  SequenceBatch s;
  s.items = batch.items.slice(0, begin, end);
  s.times = batch.times.slice(0, begin, end);
  s.query_times = batch.query_times.slice(0, begin, end);
  s.lengths = batch.lengths.slice(0, begin, end);
  s.valid = batch.valid.slice(0, begin, end);
  s.targets = batch.targets.slice(0, begin, end);
  s.sample_keys.assign(batch.sample_keys.begin() + begin, batch.sample_keys.begin() + end);
  return s;
}

SequenceBatch to_sequence_batch(const data::Batch& b, torch::Device device) {
  const auto B = static_cast<std::int64_t>(b.rows), L = static_cast<std::int64_t>(std::max(b.width, 1));
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  SequenceBatch s;
  // from_blob views the loader's buffers; .to(kInt64) / .clone() copies them.
  auto items = torch::zeros({B, L}, i64);
  auto times = torch::zeros({B, L}, i64);
  if (b.width > 0) {
    items = torch::from_blob(const_cast<std::int32_t*>(b.items.data()), {B, L}, torch::kInt32).to(torch::kInt64);
    times = torch::from_blob(const_cast<std::int64_t*>(b.times.data()), {B, L}, torch::kInt64).clone();
  }
  auto lengths = torch::from_blob(const_cast<std::int32_t*>(b.lengths.data()), {B}, torch::kInt32).to(torch::kInt64);
  s.items = items.to(device);
  s.times = times.to(device);
  s.lengths = lengths.to(device);
  s.valid = torch::arange(L, i64.device(device)).unsqueeze(0) < s.lengths.unsqueeze(1);
  if (b.training) {
    s.targets = b.width > 0 ? torch::from_blob(const_cast<std::int32_t*>(b.targets.data()), {B, L}, torch::kInt32)
                                  .to(torch::kInt64)
                                  .to(device)
                            : torch::zeros({B, L}, i64.device(device));
    s.query_times = b.width > 0
                        ? torch::from_blob(const_cast<std::int64_t*>(b.target_times.data()), {B, L}, torch::kInt64)
                              .clone()
                              .to(device)
                        : torch::zeros({B, L}, i64.device(device));
  } else {
    s.targets =
        torch::from_blob(const_cast<std::int32_t*>(b.targets.data()), {B}, torch::kInt32).to(torch::kInt64).to(device);
    // Each position predicts the next event: its time is the next input's
    // time, and the last position's is the held-out event's time.
    auto target_time =
        torch::from_blob(const_cast<std::int64_t*>(b.target_times.data()), {B}, torch::kInt64).clone().to(device);
    auto next = torch::cat({s.times.slice(1, 1), torch::zeros({B, 1}, i64.device(device))}, 1);
    auto last = (s.lengths - 1).clamp_min(0);
    next.scatter_(1, last.unsqueeze(1), target_time.unsqueeze(1));
    s.query_times = next;
  }
  s.sample_keys.resize(static_cast<std::size_t>(B));
  for (std::int64_t r = 0; r < B; ++r) {
    const auto user = r < static_cast<std::int64_t>(b.user_ids.size()) ? b.user_ids[r] : 0;
    const auto start = r < static_cast<std::int64_t>(b.window_starts.size()) ? b.window_starts[r] : 0;
    s.sample_keys[r] = derive_seed(static_cast<std::uint64_t>(user), static_cast<std::uint64_t>(start));
  }
  return s;
}

SequenceBatch history_batch(const std::vector<std::vector<std::int64_t>>& items,
                            const std::vector<std::vector<std::int64_t>>& times,
                            const std::vector<std::int64_t>& request_times, std::int64_t window) {
  data::Batch batch;
  batch.training = false;
  batch.rows = static_cast<int>(items.size());
  std::int64_t width = 1;
  for (const auto& h : items) width = std::max<std::int64_t>(width, std::min<std::int64_t>(h.size(), window));
  batch.width = static_cast<int>(width);
  batch.items.assign(static_cast<std::size_t>(batch.rows * width), 0);
  batch.times.assign(batch.items.size(), 0);
  for (std::size_t r = 0; r < items.size(); ++r) {
    const auto& ids = items[r];
    const auto& t = times[r];
    const auto n = static_cast<std::int64_t>(ids.size());
    const auto first = n - std::min(n, window);
    for (std::int64_t e = first; e < n; ++e) {
      const auto slot = static_cast<std::size_t>(static_cast<std::int64_t>(r) * width + e - first);
      batch.items[slot] = static_cast<std::int32_t>(ids[static_cast<std::size_t>(e)]);
      batch.times[slot] = t.empty() ? e : t[static_cast<std::size_t>(e)];
    }
    batch.lengths.push_back(static_cast<std::int32_t>(n - first));
    batch.targets.push_back(0);
    batch.target_times.push_back(request_times[r]);
    batch.user_ids.push_back(0);
  }
  return to_sequence_batch(batch);
}

}  // namespace longrec::model
