#include "longrec/serve/recommender.h"

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include <fmt/format.h>

#include "longrec/ckpt/checkpoint.h"
#include "longrec/core/error.h"
#include "longrec/ckpt/bundle.h"
#include "longrec/model/item_vectors.h"
#include "longrec/model/sequence_batch.h"
#include "longrec/model/sequential_recommender.h"
#include "longrec/model/text_items.h"
#include "longrec/model/user_state.h"
#include "longrec/text/tokenizer.h"

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

namespace {

// One version of the catalogue, never changed once published: a request reads
// the version it started with while add_item publishes the next one.
struct Catalogue {
  torch::Tensor table;                              // [I+1, D] raw rows, row 0 padding
  torch::Tensor normalized;                         // [I, D]: row k is internal id k + 1
  std::unique_ptr<model::UserStateEncoder> states;  // over `table`
  std::int64_t size() const { return normalized.size(0); }
};

// A catalogue's rows as the ItemVectors the model's forward looks items up in.
class CatalogueRows final : public model::ItemVectors {
 public:
  explicit CatalogueRows(const Catalogue& catalogue) : c_(catalogue) {}
  std::int64_t num_items() const override { return c_.size(); }
  std::int64_t dim() const override { return c_.table.size(1); }
  model::ItemRows lookup(const torch::Tensor& unique_ids) override {
    return {unique_ids, c_.table.index_select(0, unique_ids)};
  }
  void apply_gradients(const model::ItemRows&, double) override {
    LONGREC_CHECK(false, "a served catalogue is not trained");
  }
  torch::Tensor normalized_vectors(const torch::Tensor& ids) override { return c_.normalized.index_select(0, ids - 1); }
  torch::Tensor owned_ids() const override { return torch::arange(1, c_.size() + 1, torch::kInt64); }
  torch::Tensor owned_normalized_vectors(std::int64_t begin, std::int64_t end) override {
    return c_.normalized.slice(0, begin, end);
  }

 private:
  const Catalogue& c_;
};

}  // namespace

struct Recommender::Impl {
  model::ModelConfig config;
  std::string source;
  std::unique_ptr<model::SequentialRecommender> model;
  std::int64_t window = 0;  // events the model sees
  // hllm with the item LLM: the bundle's tokenizer and the empty item inputs
  // that compose a text as training did. no_item_llm: why add_item refuses (empty: it accepts).
  std::unique_ptr<text::Tokenizer> tokenizer;
  std::unique_ptr<model::ItemTextInputs> text_prefix;
  std::string no_item_llm;

  // Guards the five members below; held to map ids or swap versions, never for a forward.
  mutable std::shared_mutex mutex;
  std::shared_ptr<const Catalogue> catalogue;
  std::vector<std::int64_t> raw_ids;
  std::unordered_map<std::int64_t, std::int64_t> internal;  // raw id -> internal id
  std::vector<std::string> titles;                          // empty when the bundle has none and no item was added
  // Used by add_item alone (under add_mutex): the rows' storage with room to grow,
  // [capacity + 1, D] and [capacity, D]. Published catalogues are views of their
  // first rows, so an added row is written where no request reads.
  torch::Tensor table_storage, normalized_storage;
  std::mutex add_mutex;  // one add_item at a time: its duplicate check holds until it publishes

  std::shared_ptr<const Catalogue> current() const {
    std::shared_lock lock(mutex);
    return catalogue;
  }

  // Internal ids of histories of raw ids, and the catalogue they index (both
  // read together, so every id is in it). DataError naming an unknown item.
  std::shared_ptr<const Catalogue> resolve(const std::vector<std::vector<std::int64_t>>& histories,
                                           std::vector<std::vector<std::int64_t>>& ids) const {
    ids.clear();
    std::shared_lock lock(mutex);
    for (const auto& history : histories) {
      if (history.empty()) throw DataError("empty history: at least one event is needed");
      auto& out = ids.emplace_back();
      out.reserve(history.size());
      for (auto raw : history) {
        const auto it = internal.find(raw);
        if (it == internal.end()) throw DataError(fmt::format("item {} is not in the model's catalogue", raw));
        out.push_back(it->second);
      }
    }
    return catalogue;
  }

  // User vectors [B, D] of histories of internal ids (each truncated to its newest `window` events).
  torch::Tensor user_vectors(const Catalogue& catalogue, const std::vector<std::vector<std::int64_t>>& ids,
                             const std::vector<std::vector<std::int64_t>>& times,
                             const std::vector<std::int64_t>& request_times) const {
    torch::NoGradGuard no_grad;
    std::vector<std::int64_t> query_times;
    for (std::size_t r = 0; r < ids.size(); ++r) {
      const auto& t = times[r];
      if (!t.empty() && t.size() != ids[r].size()) {
        throw DataError(fmt::format("{} events but {} times: one time per event expected", ids[r].size(), t.size()));
      }
      const auto n = static_cast<std::int64_t>(ids[r].size());
      const auto last_time = t.empty() ? n - 1 : t.back();
      query_times.push_back(request_times[r] >= 0 ? request_times[r] : (t.empty() ? last_time + 1 : last_time));
    }
    const auto sequence = model::history_batch(ids, times, query_times, window);
    CatalogueRows rows(catalogue);
    return model::l2_normalize(model::last_position_vectors(*model, rows, sequence));
  }

  // seen: internal ids to exclude.
  std::vector<Recommendation> top_k(const Catalogue& catalogue, const torch::Tensor& user,
                                    const std::vector<std::int64_t>& seen, int k, bool exclude_seen) const {
    const auto I = catalogue.size();
    if (k < 1 || k > I) throw ConfigError("k", fmt::format("got {}, expected 1..{} (the catalogue)", k, I));
    auto scores = torch::mv(catalogue.normalized, user);  // [I]
    if (exclude_seen && !seen.empty()) {
      scores.index_fill_(0, torch::tensor(seen, torch::kInt64) - 1, -std::numeric_limits<float>::infinity());
    }
    const auto [values, index] = scores.topk(k);
    std::vector<Recommendation> out;
    std::shared_lock lock(mutex);  // rows < I: the raw ids and titles only grow past them
    for (std::int64_t j = 0; j < k; ++j) {
      const auto score = values[j].item<double>();
      if (!std::isfinite(score)) break;  // fewer candidates than k once the history is excluded
      const auto row = static_cast<std::size_t>(index[j].item<std::int64_t>());
      out.push_back({raw_ids[row], score, row < titles.size() ? titles[row] : std::string()});
    }
    return out;
  }

  torch::Tensor state_vector(const Catalogue& catalogue, const UserState& state, std::int64_t request_time) const {
    const auto& s = state.impl_->state;
    if (s.raw_items.empty()) throw DataError("empty history: the state has no events yet");
    const auto last = s.raw_times.back();
    return catalogue.states->score(s,
                                   request_time >= 0 ? request_time : (state.impl_->ordinal_times ? last + 1 : last));
  }

  // The version over the first `size` rows of the storage.
  std::shared_ptr<const Catalogue> view(std::int64_t size) const {
    auto out = std::make_shared<Catalogue>();
    out->table = table_storage.slice(0, 0, size + 1);
    out->normalized = normalized_storage.slice(0, 0, size);
    out->states = std::make_unique<model::UserStateEncoder>(*model, out->table);
    return out;
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
  const bool hllm = impl.config.backbone == "hllm";
  const auto first_item_llm = content.tensors.lower_bound("/model/item_encoder.");
  const bool item_llm =
      hllm && first_item_llm != content.tensors.end() && first_item_llm->first.starts_with("/model/item_encoder.");
  // Without the item LLM's weights the model is built without it; its configuration
  // (and so the architecture signature of serving states) stays the trained one.
  impl.model = std::make_unique<model::SequentialRecommender>(
      impl.config, hllm && !item_llm ? model::ItemLlm::kOmit : model::ItemLlm::kBuild);
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
  if (!hllm) {
    impl.no_item_llm = fmt::format("{} is a {} model: its items are learned rows, only an hllm model encodes new ones",
                                   path.string(), impl.config.backbone);
  } else if (!item_llm) {
    impl.no_item_llm = fmt::format(
        "{} was exported without the item LLM (--export.item_llm=false): it ranks its known items only", path.string());
  } else if (content.tokenizer.empty()) {
    impl.no_item_llm =
        fmt::format("{} holds the item LLM but no tokenizer (/items/tokenizer): export it again", path.string());
  } else {
    auto tokenizer = text::Tokenizer::from_bytes(std::move(content.tokenizer), path.string() + ":/items/tokenizer");
    const auto& h = impl.config.hllm;
    if (tokenizer.checksum() != h.tokenizer_checksum) {
      throw DataError(fmt::format("{}: /items/tokenizer has checksum {}, the model was trained with {}", path.string(),
                                  tokenizer.checksum(), h.tokenizer_checksum));
    }
    if (tokenizer.vocab_size() > h.vocab_size) {
      throw DataError(fmt::format("{}: /items/tokenizer has {} ids, the item LLM {}", path.string(),
                                  tokenizer.vocab_size(), h.vocab_size));
    }
    impl.text_prefix = std::make_unique<model::ItemTextInputs>(tokenizer, h);
    impl.tokenizer = std::make_unique<text::Tokenizer>(std::move(tokenizer));
  }
  const auto I = static_cast<std::int64_t>(content.item_ids.size());
  const auto D = static_cast<std::int64_t>(impl.config.dim);
  const auto& table = content.tensors.at("/items/table");
  if (static_cast<std::int64_t>(table.size()) != I * D) {
    throw DataError(
        fmt::format("{}: /items/table holds {} values for {} items x {}", path.string(), table.size(), I, D));
  }
  impl.table_storage = torch::cat({torch::zeros({1, D}), torch::tensor(table).view({I, D})});
  impl.normalized_storage = model::l2_normalize(impl.table_storage.slice(0, 1)).contiguous();
  impl.catalogue = impl.view(I);
  impl.raw_ids = std::move(content.item_ids);
  for (std::int64_t k = 0; k < I; ++k) impl.internal[impl.raw_ids[static_cast<std::size_t>(k)]] = k + 1;
  impl.titles = std::move(content.item_text);
  impl.window = model::longest_history(impl.config.max_len, impl.config.personalization);
  return out;
}

std::int64_t Recommender::num_items() const { return impl_->current()->size(); }
std::int64_t Recommender::dim() const { return impl_->config.dim; }
std::int64_t Recommender::max_history() const { return impl_->window; }

std::vector<std::int64_t> Recommender::item_ids() const {
  std::shared_lock lock(impl_->mutex);
  return impl_->raw_ids;
}

std::vector<float> Recommender::item_vector(std::int64_t raw_id) const {
  std::vector<std::vector<std::int64_t>> ids;
  const auto catalogue = impl_->resolve({{raw_id}}, ids);
  return to_floats(catalogue->table[ids[0][0]]);
}

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
  std::vector<std::vector<std::int64_t>> ids;
  const auto catalogue = impl_->resolve({history}, ids);
  const auto user = impl_->user_vectors(*catalogue, ids, {times}, {request_time})[0];
  return impl_->top_k(*catalogue, user, ids[0], k, exclude_seen);
}

std::vector<std::vector<Recommendation>> Recommender::recommend_batch(
    const std::vector<std::vector<std::int64_t>>& histories, int k, bool exclude_seen) const {
  std::vector<std::vector<Recommendation>> out;
  if (histories.empty()) return out;
  std::vector<std::vector<std::int64_t>> ids;
  const auto catalogue = impl_->resolve(histories, ids);
  const auto users = impl_->user_vectors(*catalogue, ids, std::vector<std::vector<std::int64_t>>(histories.size()),
                                         std::vector<std::int64_t>(histories.size(), -1));
  for (std::size_t r = 0; r < histories.size(); ++r) {
    out.push_back(impl_->top_k(*catalogue, users[static_cast<std::int64_t>(r)], ids[r], k, exclude_seen));
  }
  return out;
}

std::vector<float> Recommender::user_vector(const std::vector<std::int64_t>& history,
                                            const std::vector<std::int64_t>& times, std::int64_t request_time) const {
  std::vector<std::vector<std::int64_t>> ids;
  const auto catalogue = impl_->resolve({history}, ids);
  return to_floats(impl_->user_vectors(*catalogue, ids, {times}, {request_time})[0]);
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
  std::vector<std::vector<std::int64_t>> ids;
  const auto catalogue = impl_->resolve({items}, ids);  // throws before the state changes
  std::vector<std::int64_t> event_times = times;
  if (times.empty()) {
    for (std::size_t e = 0; e < items.size(); ++e)
      event_times.push_back(s.state.events_seen + static_cast<std::int64_t>(e));
  }
  catalogue->states->append(s.state, ids[0], event_times);  // all or nothing; checks one time per event, in order
  s.ordinal_times = times.empty();  // only once the events are in: a refused append changes nothing
}

std::vector<Recommendation> Recommender::recommend(const UserState& state, int k, bool exclude_seen,
                                                   std::int64_t request_time) const {
  // A state holds only ids of catalogues published before this call: all in the current one.
  const auto catalogue = impl_->current();
  const auto user = impl_->state_vector(*catalogue, state, request_time);
  return impl_->top_k(*catalogue, user, state.impl_->state.raw_items, k, exclude_seen);
}

std::vector<std::vector<Recommendation>> Recommender::recommend_batch(const std::vector<const UserState*>& states,
                                                                      int k, bool exclude_seen) const {
  std::vector<std::vector<Recommendation>> out;
  for (const auto* state : states) out.push_back(recommend(*state, k, exclude_seen));
  return out;
}

std::vector<float> Recommender::user_vector(const UserState& state, std::int64_t request_time) const {
  return to_floats(impl_->state_vector(*impl_->current(), state, request_time));
}

std::string Recommender::serialize(const UserState& state) const {
  // One leading byte for the time convention, then the model's state format (versioned, checksummed).
  return std::string(1, state.impl_->ordinal_times ? 'O' : 'T') +
         impl_->current()->states->serialize(state.impl_->state);
}

UserState Recommender::deserialize(const std::string& bytes) const {
  if (bytes.empty() || (bytes[0] != 'O' && bytes[0] != 'T')) {
    throw DataError("not a longrec serving state (expected a leading 'O' or 'T' byte)");
  }
  UserState state;
  state.impl_->ordinal_times = bytes[0] == 'O';
  state.impl_->state = impl_->current()->states->deserialize(bytes.substr(1));  // ids checked against the catalogue
  return state;
}

bool Recommender::accepts_new_items() const { return impl_->no_item_llm.empty(); }
std::string Recommender::new_items_refusal() const { return impl_->no_item_llm; }

std::int64_t Recommender::add_item(std::int64_t raw_id, const std::string& text) {
  using Reason = ItemRefused::Reason;
  auto& impl = *impl_;
  if (!impl.no_item_llm.empty()) {
    throw ItemRefused(Reason::kNoItemLlm, fmt::format("item {}: cannot add items: {}", raw_id, impl.no_item_llm));
  }
  if (text.find_first_not_of(" \t\r\n\f\v") == std::string::npos) {
    throw ItemRefused(Reason::kEmptyText,
                      fmt::format("item {}: \"text\" is empty; the item LLM reads the item's text", raw_id));
  }
  std::lock_guard adding(impl.add_mutex);
  {
    std::shared_lock lock(impl.mutex);
    if (const auto it = impl.internal.find(raw_id); it != impl.internal.end()) {
      throw ItemRefused(Reason::kDuplicate,
                        fmt::format("item {} is already in the catalogue (internal id {})", raw_id, it->second));
    }
  }
  const auto tokens = impl.tokenizer->encode(text);
  if (tokens.empty()) {
    throw ItemRefused(Reason::kEmptyText,
                      fmt::format("item {}: \"text\" has no tokens under the model's tokenizer", raw_id));
  }
  torch::NoGradGuard no_grad;
  auto inputs = *impl.text_prefix;  // empty: the new item becomes its id 1
  inputs.append(tokens);
  // [1, D]; the model is in eval mode since load (no dropout), and only read here.
  const auto row = impl.model->item_encoder()->encode(inputs, torch::ones({1}, torch::kInt64)).to(torch::kFloat32);

  // Rows past the published catalogue are read by no request: written before publishing.
  const auto I = impl.catalogue->size();  // only add_item changes it, and add_mutex is held
  if (I == impl.normalized_storage.size(0)) {
    // Grown by a quarter: amortised O(D) per item; the old storage lives on in the versions requests hold.
    const auto capacity = I + std::max<std::int64_t>(I / 4, 64);
    const auto D = impl.table_storage.size(1);
    auto table = torch::zeros({capacity + 1, D});
    auto normalized = torch::zeros({capacity, D});
    table.slice(0, 0, I + 1).copy_(impl.table_storage.slice(0, 0, I + 1));
    normalized.slice(0, 0, I).copy_(impl.normalized_storage.slice(0, 0, I));
    impl.table_storage = table;
    impl.normalized_storage = normalized;
  }
  impl.table_storage[I + 1].copy_(row[0]);
  impl.normalized_storage[I].copy_(model::l2_normalize(row)[0]);
  auto next = impl.view(I + 1);

  std::unique_lock lock(impl.mutex);
  impl.catalogue = std::move(next);
  impl.raw_ids.push_back(raw_id);
  impl.internal[raw_id] = I + 1;
  impl.titles.resize(static_cast<std::size_t>(I));  // a bundle without titles: empty ones before this item's
  impl.titles.push_back(text);
  return I + 1;
}

}  // namespace longrec::serve
