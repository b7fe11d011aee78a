#include "longrec/serve/recommender.h"

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <unordered_map>

#include <fmt/format.h>

#include "longrec/ckpt/checkpoint.h"
#include "longrec/core/error.h"
#include "longrec/model/item_table.h"
#include "longrec/model/item_vectors.h"
#include "longrec/model/sequence_batch.h"
#include "longrec/model/sequential_recommender.h"
#include "longrec/model/user_state.h"
#include "longrec/ckpt/bundle.h"

namespace longrec::serve {

namespace {

std::vector<float> to_floats(const torch::Tensor& vector) {
  const auto v = vector.contiguous();
  return std::vector<float>(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
}

}  // namespace

struct UserState::Impl {
  model::UserState state;
  bool ordinal_times = true;  // appended without times: event e has time e (as recommend(history) assumes)
};

UserState::UserState() : impl_(std::make_unique<Impl>()) {}
UserState::~UserState() = default;
UserState::UserState(UserState&&) noexcept = default;
UserState& UserState::operator=(UserState&&) noexcept = default;
std::int64_t UserState::events() const { return impl_->state.events_seen; }
std::int64_t UserState::held_events() const { return static_cast<std::int64_t>(impl_->state.raw_items.size()); }
std::int64_t UserState::cached_tokens() const { return impl_->state.cached_tokens(); }
std::int64_t UserState::memory_bytes() const { return impl_->state.memory_bytes(); }

struct Recommender::Impl {
  model::ModelConfig config;
  std::string source;
  std::unique_ptr<model::SequentialRecommender> model;
  std::unique_ptr<model::LocalItemTable> items;
  torch::Tensor normalized;  // [I, D]: row k is internal id k + 1
  std::vector<std::int64_t> raw_ids;
  std::unordered_map<std::int64_t, std::int64_t> internal;  // raw id -> internal id
  std::vector<std::string> titles;
  std::int64_t window = 0;  // events the model sees
  std::unique_ptr<model::UserStateEncoder> states;

  // Internal ids of a history of raw ids; DataError naming an unknown one.
  std::vector<std::int32_t> to_internal(const std::vector<std::int64_t>& history) const {
    if (history.empty()) throw DataError("empty history: at least one event is needed");
    std::vector<std::int32_t> out;
    out.reserve(history.size());
    for (auto raw : history) {
      const auto it = internal.find(raw);
      if (it == internal.end()) throw DataError(fmt::format("item {} is not in the model's catalogue", raw));
      out.push_back(static_cast<std::int32_t>(it->second));
    }
    return out;
  }

  // User vectors [B, D] of histories (each truncated to its newest `window` events).
  torch::Tensor user_vectors(const std::vector<std::vector<std::int64_t>>& histories,
                             const std::vector<std::vector<std::int64_t>>& times,
                             const std::vector<std::int64_t>& request_times) const {
    torch::NoGradGuard no_grad;
    std::vector<std::vector<std::int64_t>> ids;
    std::vector<std::int64_t> query_times;
    for (std::size_t r = 0; r < histories.size(); ++r) {
      ids.push_back(internal_ids(histories[r]));
      const auto& t = times[r];
      if (!t.empty() && t.size() != ids.back().size()) {
        throw DataError(
            fmt::format("{} events but {} times: one time per event expected", ids.back().size(), t.size()));
      }
      const auto n = static_cast<std::int64_t>(ids.back().size());
      const auto last_time = t.empty() ? n - 1 : t.back();
      query_times.push_back(request_times[r] >= 0 ? request_times[r] : (t.empty() ? last_time + 1 : last_time));
    }
    const auto sequence = model::history_batch(ids, times, query_times, window);
    return model::l2_normalize(model::last_position_vectors(*model, *items, sequence));
  }

  // seen: internal ids to exclude.
  std::vector<Recommendation> top_k(const torch::Tensor& user, const std::vector<std::int64_t>& seen, int k,
                                    bool exclude_seen) const {
    const auto I = static_cast<std::int64_t>(raw_ids.size());
    if (k < 1 || k > I) throw ConfigError("k", fmt::format("got {}, expected 1..{} (the catalogue)", k, I));
    auto scores = torch::mv(normalized, user);  // [I]
    if (exclude_seen && !seen.empty()) {
      scores.index_fill_(0, torch::tensor(seen, torch::kInt64) - 1, -std::numeric_limits<float>::infinity());
    }
    const auto [values, index] = scores.topk(k);
    std::vector<Recommendation> out;
    for (std::int64_t j = 0; j < k; ++j) {
      const auto score = values[j].item<double>();
      if (!std::isfinite(score)) break;  // fewer candidates than k once the history is excluded
      const auto row = index[j].item<std::int64_t>();
      out.push_back({raw_ids[static_cast<std::size_t>(row)], score,
                     titles.empty() ? std::string() : titles[static_cast<std::size_t>(row)]});
    }
    return out;
  }

  std::vector<std::int64_t> internal_ids(const std::vector<std::int64_t>& history) const {
    const auto ids = to_internal(history);
    return {ids.begin(), ids.end()};
  }

  torch::Tensor state_vector(const UserState& state, std::int64_t request_time) const {
    const auto& s = state.impl_->state;
    if (s.raw_items.empty()) throw DataError("empty history: the state has no events yet");
    const auto last = s.raw_times.back();
    return states->score(s, request_time >= 0 ? request_time : (state.impl_->ordinal_times ? last + 1 : last));
  }
};

Recommender::Recommender() : impl_(std::make_unique<Impl>()) {}
Recommender::~Recommender() = default;

std::unique_ptr<Recommender> Recommender::load(const std::filesystem::path& path, int threads) {
  if (threads > 0) at::set_num_threads(threads);
  auto content = ckpt::read_bundle(path);
  if (content.content != "full") {
    throw DataError(
        fmt::format("{}: an items-only bundle has no model weights; export it without --items-only", path.string()));
  }
  std::unique_ptr<Recommender> out(new Recommender());
  auto& impl = *out->impl_;
  impl.config = model::model_config_from_json(content.model_json);
  impl.source = content.source_json;
  impl.model = std::make_unique<model::SequentialRecommender>(impl.config);
  torch::NoGradGuard no_grad;
  for (auto& p : impl.model->named_parameters()) {
    const auto name = "/model/" + p.key();
    const auto it = content.tensors.find(name);
    if (it == content.tensors.end() || static_cast<std::int64_t>(it->second.size()) != p.value().numel()) {
      throw DataError(
          fmt::format("{}: {} missing or of another shape; the bundle does not match its model "
                      "configuration",
                      path.string(), name));
    }
    p.value().copy_(torch::tensor(it->second).view(p.value().sizes()));
  }
  impl.model->eval();
  const auto I = static_cast<std::int64_t>(content.item_ids.size());
  const auto D = static_cast<std::int64_t>(impl.config.dim);
  const auto& table = content.tensors.at("/items/table");
  if (static_cast<std::int64_t>(table.size()) != I * D) {
    throw DataError(
        fmt::format("{}: /items/table holds {} values for {} items x {}", path.string(), table.size(), I, D));
  }
  impl.items = std::make_unique<model::LocalItemTable>(I, D, model::SparseOptimizerConfig{}, 0);
  auto rows = torch::tensor(table).view({I, D});
  impl.items->load_owned_state({{"weight", rows}});
  impl.normalized = impl.items->normalized_rows(1, I + 1).contiguous();
  impl.raw_ids = std::move(content.item_ids);
  for (std::int64_t k = 0; k < I; ++k) impl.internal[impl.raw_ids[static_cast<std::size_t>(k)]] = k + 1;
  impl.titles = std::move(content.item_text);
  impl.window = model::longest_history(impl.config.max_len, impl.config.personalization);
  impl.states = std::make_unique<model::UserStateEncoder>(*impl.model, impl.items->weight());
  return out;
}

std::int64_t Recommender::num_items() const { return static_cast<std::int64_t>(impl_->raw_ids.size()); }
std::int64_t Recommender::dim() const { return impl_->config.dim; }
const std::vector<std::int64_t>& Recommender::item_ids() const { return impl_->raw_ids; }
std::int64_t Recommender::max_history() const { return impl_->window; }

std::string Recommender::describe() const {
  const auto source = nlohmann::json::parse(impl_->source, nullptr, false);
  return fmt::format("{} over {} items{}", impl_->config.describe(), num_items(),
                     source.is_discarded() ? std::string()
                                           : fmt::format(" (step {} of {})", source.value("step", 0),
                                                         source.value("checkpoint", std::string("?"))));
}

std::vector<Recommendation> Recommender::recommend(const std::vector<std::int64_t>& history, int k, bool exclude_seen,
                                                   const std::vector<std::int64_t>& times,
                                                   std::int64_t request_time) const {
  const auto user = impl_->user_vectors({history}, {times}, {request_time})[0];
  return impl_->top_k(user, impl_->internal_ids(history), k, exclude_seen);
}

std::vector<std::vector<Recommendation>> Recommender::recommend_batch(
    const std::vector<std::vector<std::int64_t>>& histories, int k, bool exclude_seen) const {
  std::vector<std::vector<Recommendation>> out;
  if (histories.empty()) return out;
  const auto users = impl_->user_vectors(histories, std::vector<std::vector<std::int64_t>>(histories.size()),
                                         std::vector<std::int64_t>(histories.size(), -1));
  for (std::size_t r = 0; r < histories.size(); ++r) {
    out.push_back(
        impl_->top_k(users[static_cast<std::int64_t>(r)], impl_->internal_ids(histories[r]), k, exclude_seen));
  }
  return out;
}

std::vector<float> Recommender::user_vector(const std::vector<std::int64_t>& history,
                                            const std::vector<std::int64_t>& times, std::int64_t request_time) const {
  return to_floats(impl_->user_vectors({history}, {times}, {request_time})[0]);
}

UserState Recommender::create_state(const std::vector<std::int64_t>& history,
                                    const std::vector<std::int64_t>& times) const {
  if (history.empty()) throw DataError("empty history: at least one event is needed");
  UserState state;
  append(state, history, times);
  return state;
}

void Recommender::append(UserState& state, const std::vector<std::int64_t>& items,
                         const std::vector<std::int64_t>& times) const {
  if (items.empty()) throw DataError("no events to append");
  auto& s = *state.impl_;
  if (s.state.events_seen > 0 && s.ordinal_times != times.empty()) {
    throw DataError(s.ordinal_times ? "this state was built without times (ordinal 0, 1, 2, ...); append without times"
                                    : "this state was built with event times; give one time per appended event");
  }
  const auto ids = impl_->internal_ids(items);  // throws before the state changes
  std::vector<std::int64_t> event_times = times;
  if (times.empty()) {
    for (std::size_t e = 0; e < items.size(); ++e)
      event_times.push_back(s.state.events_seen + static_cast<std::int64_t>(e));
  }
  impl_->states->append(s.state, ids, event_times);  // all or nothing; checks one time per event, in order
  s.ordinal_times = times.empty();                   // only once the events are in: a refused append changes nothing
}

std::vector<Recommendation> Recommender::recommend(const UserState& state, int k, bool exclude_seen,
                                                   std::int64_t request_time) const {
  const auto user = impl_->state_vector(state, request_time);
  return impl_->top_k(user, state.impl_->state.raw_items, k, exclude_seen);
}

std::vector<std::vector<Recommendation>> Recommender::recommend_batch(const std::vector<const UserState*>& states,
                                                                      int k, bool exclude_seen) const {
  std::vector<std::vector<Recommendation>> out;
  for (const auto* state : states) out.push_back(recommend(*state, k, exclude_seen));
  return out;
}

std::vector<float> Recommender::user_vector(const UserState& state, std::int64_t request_time) const {
  return to_floats(impl_->state_vector(state, request_time));
}

std::string Recommender::serialize(const UserState& state) const {
  // One leading byte for the time convention, then the model's state format (versioned, checksummed).
  return std::string(1, state.impl_->ordinal_times ? 'O' : 'T') + impl_->states->serialize(state.impl_->state);
}

UserState Recommender::deserialize(const std::string& bytes) const {
  if (bytes.empty() || (bytes[0] != 'O' && bytes[0] != 'T')) {
    throw DataError("not a longrec serving state (expected a leading 'O' or 'T' byte)");
  }
  UserState state;
  state.impl_->ordinal_times = bytes[0] == 'O';
  state.impl_->state = impl_->states->deserialize(bytes.substr(1));
  return state;
}

}  // namespace longrec::serve
