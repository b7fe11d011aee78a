#include "longrec/model/user_state.h"

#include <algorithm>
#include <cstring>

#include "longrec/core/error.h"
#include "longrec/model/personalization_layout.h"
#include "longrec/model/user_state_format.h"

namespace longrec::model {

namespace {

bool uniform_layout(const ModelConfig& config) { return config.personalization.groups.empty(); }

}  // namespace

std::int64_t UserState::memory_bytes() const {
  std::int64_t bytes = static_cast<std::int64_t>(
      (raw_items.size() + raw_times.size() + token_positions.size() + token_times.size()) * sizeof(std::int64_t));
  for (const auto* list : {&memory.keys, &memory.values}) {
    for (const auto& t : *list) bytes += static_cast<std::int64_t>(t.numel() * t.element_size());
  }
  return bytes;
}

UserStateEncoder::UserStateEncoder(SequentialRecommender& model, torch::Tensor item_table)
    : model_(model), item_table_(std::move(item_table)) {
  const auto& config = model.config();
  if (model.tokens() != nullptr) {
    specs_ = model.tokens()->specs();
    recent_window_ = config.personalization.recent_window;
  } else {
    recent_window_ = config.max_len;  // no tokens: the state is the newest max_len events, recomputed per request
  }
  if (model.backbone()->uses_relative_bias()) time_buckets_ = config.time_buckets;
  // Only when needed: serving builds an encoder per catalogue version while
  // other threads run the (eval mode) model, and must not write its flags.
  if (model_.is_training()) model_.eval();
}

void UserStateEncoder::check_item_ids(const std::vector<std::int64_t>& items) const {
  const auto catalogue = item_table_.size(0) - 1;
  for (auto id : items) {
    if (id < 1 || id > catalogue) {
      throw DataError(fmt::format("item id {} is outside the catalogue (1..{})", id, catalogue));
    }
  }
}

torch::Tensor UserStateEncoder::embed(const std::vector<std::int64_t>& items) const {
  check_item_ids(items);
  const auto ids = torch::tensor(items, torch::kInt64);
  return item_table_.index_select(0, ids.to(item_table_.device())).unsqueeze(0);
}

namespace {

SequenceBatch one_row(const std::vector<std::int64_t>& items, const std::vector<std::int64_t>& times,
                      std::int64_t count, std::int64_t last_query_time, torch::Device device) {
  SequenceBatch b;
  const auto n = count;
  std::vector<std::int64_t> query(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    query[static_cast<std::size_t>(i)] =
        i + 1 < static_cast<std::int64_t>(times.size()) ? times[static_cast<std::size_t>(i + 1)] : last_query_time;
  }
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  b.items = torch::tensor(std::vector<std::int64_t>(items.begin(), items.begin() + n), i64).view({1, n}).to(device);
  b.times = torch::tensor(std::vector<std::int64_t>(times.begin(), times.begin() + n), i64).view({1, n}).to(device);
  b.query_times = torch::tensor(query, i64).view({1, n}).to(device);
  b.lengths = torch::tensor({n}, i64).to(device);
  b.valid = torch::ones({1, n}, torch::TensorOptions().dtype(torch::kBool).device(device));
  return b;
}

// The cached tokens as key slots ahead of a sequence.
TokenMemory token_memory(const UserState& state) {
  TokenMemory memory;
  if (state.cached_tokens() > 0) {
    memory.position = torch::tensor(state.token_positions, torch::kInt64).unsqueeze(0);
    memory.time = torch::tensor(state.token_times, torch::kInt64).unsqueeze(0);
  }
  return memory;
}

}  // namespace

void UserStateEncoder::drop_oldest_group(UserState& state) const {
  LONGREC_CHECK(state.groups_done > 0, "no group to drop");
  if (!uniform_layout(model_.config())) {
    throw DataError(
        fmt::format("the history has {} events, more than the explicit personalization.groups cover "
                    "(the last ends after {} events, plus a recent window of {})",
                    state.events_seen, specs_.back().offset, recent_window_));
  }
  const auto K = specs_.front().tokens;
  const auto S = specs_.front().offset;
  for (auto* list : {&state.memory.keys, &state.memory.values}) {
    for (auto& t : *list) t = t.slice(2, K).contiguous();
  }
  state.token_positions.erase(state.token_positions.begin(), state.token_positions.begin() + K);
  state.token_times.erase(state.token_times.begin(), state.token_times.begin() + K);
  const auto shift = S + K;
  for (auto& p : state.token_positions) p -= shift;
  state.next_position -= shift;
  state.dropped_events += S;
  state.dropped_groups += 1;
  state.groups_done -= 1;
}

void UserStateEncoder::compress_ready_groups(UserState& state) const {
  torch::NoGradGuard no_grad;
  if (specs_.empty()) {  // a model without tokens: keep the window it reads, drop what falls out of it
    const auto excess = static_cast<std::int64_t>(state.raw_items.size()) - recent_window_;
    if (excess > 0) {
      state.raw_items.erase(state.raw_items.begin(), state.raw_items.begin() + excess);
      state.raw_times.erase(state.raw_times.begin(), state.raw_times.begin() + excess);
      state.dropped_events += excess;
    }
    return;
  }
  const auto G = static_cast<int>(specs_.size());
  while (true) {
    const auto n = state.events_seen - state.dropped_events;  // in the state's coordinates
    const int g = state.groups_done;
    if (g == G) {
      if (n - recent_window_ > specs_.back().offset) {
        drop_oldest_group(state);
        continue;
      }
      return;
    }
    const auto begin = g == 0 ? 0 : specs_[static_cast<std::size_t>(g - 1)].offset;
    const auto end = specs_[static_cast<std::size_t>(g)].offset;
    // Complete in the layout, and the event after it known (its time is the
    // query time of the segment's last event).
    if (!(n - recent_window_ >= end && n > end)) return;
    const auto W = end - begin;
    const auto batch = one_row(state.raw_items, state.raw_times, W, 0, item_table_.device());
    const auto slots = build_slots(specs_, 0, batch, {g, begin, state.next_position});
    const auto plan = personalization_plan(slots, true, model_.config().max_len, time_buckets_, token_memory(state));
    KeyValueMemory captured;
    model_.forward_slots(embed(std::vector<std::int64_t>(state.raw_items.begin(), state.raw_items.begin() + W)), slots,
                         plan, state.cached_tokens() > 0 ? &state.memory : nullptr, &captured);
    const auto K = specs_[static_cast<std::size_t>(g)].tokens;
    const auto first = slots.block_begin.at(0) + slots.block_events.at(0);
    for (std::size_t layer = 0; layer < captured.keys.size(); ++layer) {
      auto k = captured.keys[layer].slice(2, first, first + K);
      auto v = captured.values[layer].slice(2, first, first + K);
      if (state.memory.keys.size() <= layer) {
        state.memory.keys.push_back(k.contiguous());
        state.memory.values.push_back(v.contiguous());
      } else {
        state.memory.keys[layer] = torch::cat({state.memory.keys[layer], k}, 2);
        state.memory.values[layer] = torch::cat({state.memory.values[layer], v}, 2);
      }
    }
    const auto token_time = state.raw_times[static_cast<std::size_t>(W - 1)];
    for (int k = 0; k < K; ++k) {
      state.token_positions.push_back(state.next_position + W + k);
      state.token_times.push_back(token_time);
    }
    state.next_position += W + K;
    state.raw_items.erase(state.raw_items.begin(), state.raw_items.begin() + W);
    state.raw_times.erase(state.raw_times.begin(), state.raw_times.begin() + W);
    state.groups_done += 1;
  }
}

UserState UserStateEncoder::compress(const std::vector<std::int64_t>& items,
                                     const std::vector<std::int64_t>& times) const {
  UserState state;
  append(state, items, times);
  return state;
}

void UserStateEncoder::append(UserState& state, const std::vector<std::int64_t>& items,
                              const std::vector<std::int64_t>& times) const {
  if (items.size() != times.size()) {
    throw DataError(fmt::format("{} items but {} times: one time per event expected", items.size(), times.size()));
  }
  check_item_ids(items);
  // Events arrive in time order (HSTU's time biases and the token times assume
  // it). raw_times is never empty once events are in: a segment is compressed
  // only when the event after it is known.
  if (!times.empty() && !state.raw_times.empty() && times.front() < state.raw_times.back()) {
    throw DataError(fmt::format("event time {} is before the state's newest event ({}): events arrive in time order",
                                times.front(), state.raw_times.back()));
  }
  if (const auto it = std::is_sorted_until(times.begin(), times.end()); it != times.end()) {
    throw DataError(fmt::format("event times out of order: {} after {} (events arrive in time order)", *it, *(it - 1)));
  }
  // All or nothing: the work is done on a copy (its tensors are shared, never
  // written in place) that replaces the state only once every event is in.
  UserState next = state;
  const auto max_len = model_.config().max_len;
  const auto interleaved = [&] {
    if (specs_.empty()) return static_cast<std::int64_t>(next.raw_items.size());
    return make_layout(specs_, recent_window_, next.events_seen - next.dropped_events).length();
  };
  // One event at a time, so that a batch of events leaves exactly the state
  // their one-by-one arrival does (compressions and slides interleave alike).
  for (std::size_t e = 0; e < items.size(); ++e) {
    next.raw_items.push_back(items[e]);
    next.raw_times.push_back(times[e]);
    next.events_seen += 1;
    compress_ready_groups(next);
    // Beyond the longest history the model's positions reach (model.max_len:
    // events plus the tokens of every group, the partial one included), slide
    // as the group cap does: the oldest group goes.
    while (interleaved() > max_len && next.groups_done > 0) drop_oldest_group(next);
    if (interleaved() > max_len) {
      throw DataError(
          fmt::format("{} raw events and their tokens exceed model.max_len = {}", next.raw_items.size(), max_len));
    }
  }
  state = std::move(next);
}

torch::Tensor UserStateEncoder::score(const UserState& state, std::int64_t request_time) const {
  torch::NoGradGuard no_grad;
  if (state.raw_items.empty()) throw DataError("cannot score an empty history");
  const auto n_raw = static_cast<std::int64_t>(state.raw_items.size());
  if (specs_.empty()) {
    const auto batch = one_row(state.raw_items, state.raw_times, n_raw, request_time, item_table_.device());
    auto user = model_.forward(embed(state.raw_items), batch)[0][n_raw - 1];
    return l2_normalize(user);
  }
  const int g = state.groups_done;
  const auto first_event = g == 0 ? 0 : specs_[static_cast<std::size_t>(g - 1)].offset;
  const auto batch = one_row(state.raw_items, state.raw_times, n_raw, request_time, item_table_.device());
  const auto slots = build_slots(specs_, recent_window_, batch, {g, first_event, state.next_position});
  const auto plan = personalization_plan(slots, true, model_.config().max_len, time_buckets_, token_memory(state));
  auto out =
      model_.forward_slots(embed(state.raw_items), slots, plan, state.cached_tokens() > 0 ? &state.memory : nullptr);
  auto user = out[0][slots.event_slot[0][n_raw - 1].item<std::int64_t>()];
  return l2_normalize(user);
}

std::string UserStateEncoder::signature() const { return architecture_signature(model_.config()); }

std::string UserStateEncoder::serialize(const UserState& state) const {
  UserStateRecord record;
  record.signature = signature();
  const auto dtype = model_.dtype();
  record.float64 = dtype == torch::kFloat64;
  record.events_seen = state.events_seen;
  record.dropped_events = state.dropped_events;
  record.dropped_groups = state.dropped_groups;
  record.groups_done = state.groups_done;
  record.next_position = state.next_position;
  record.raw_items = state.raw_items;
  record.raw_times = state.raw_times;
  record.token_positions = state.token_positions;
  record.token_times = state.token_times;
  std::vector<torch::Tensor> held;  // the CPU copies the record points into
  for (std::size_t layer = 0; layer < state.memory.keys.size(); ++layer) {
    for (auto [t, list] :
         {std::pair{&state.memory.keys[layer], &record.keys}, std::pair{&state.memory.values[layer], &record.values}}) {
      held.push_back(t->to(torch::kCPU, dtype).contiguous());
      UserStateRecord::CachedTensor cached;
      for (int d = 0; d < 4; ++d) cached.shape[d] = held.back().size(d);
      cached.data = static_cast<const char*>(held.back().data_ptr());
      cached.bytes = static_cast<std::size_t>(held.back().numel() * held.back().element_size());
      list->push_back(cached);
    }
  }
  return write_user_state_record(record);
}

UserState UserStateEncoder::deserialize(const std::string& bytes) const {
  const auto record = read_user_state_record(bytes);  // the layout, torch-free
  if (record.signature != signature()) {
    throw DataError(fmt::format("user state belongs to another model: saved '{}', this model is '{}'", record.signature,
                                signature()));
  }
  const auto& c = model_.config();
  if (!record.keys.empty() && static_cast<int>(record.keys.size()) != c.blocks) {
    throw DataError(fmt::format("user state has {} layers, the model has {}", record.keys.size(), c.blocks));
  }
  check_item_ids(record.raw_items);
  UserState state;
  state.events_seen = record.events_seen;
  state.dropped_events = record.dropped_events;
  state.dropped_groups = record.dropped_groups;
  state.groups_done = record.groups_done;
  state.next_position = record.next_position;
  state.raw_items = record.raw_items;
  state.raw_times = record.raw_times;
  state.token_positions = record.token_positions;
  state.token_times = record.token_times;
  const auto dtype = record.float64 ? torch::kFloat64 : torch::kFloat32;
  for (std::size_t layer = 0; layer < record.keys.size(); ++layer) {
    for (auto [cached, list] :
         {std::pair{&record.keys[layer], &state.memory.keys}, std::pair{&record.values[layer], &state.memory.values}}) {
      const auto& shape = cached->shape;
      if (shape[1] != c.heads || shape[3] != c.resolved_head_dim()) {
        throw DataError(fmt::format("user state layer {}: cached tensor {}x{}x{}x{} does not fit the model", layer,
                                    shape[0], shape[1], shape[2], shape[3]));
      }
      auto t = torch::empty({shape[0], shape[1], shape[2], shape[3]}, torch::TensorOptions().dtype(dtype));
      if (cached->bytes > 0) std::memcpy(t.data_ptr(), cached->data, cached->bytes);
      list->push_back(t.to(item_table_.device(), model_.dtype()));
    }
  }
  return state;
}

}  // namespace longrec::model
