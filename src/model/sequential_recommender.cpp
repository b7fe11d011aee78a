#include "longrec/model/sequential_recommender.h"

#include <algorithm>
#include <cmath>

#include "longrec/core/error.h"

namespace longrec::model {

SequentialRecommender::SequentialRecommender(const ModelConfig& config, ItemLlm item_llm)
    : config_(config), backbone_(make_backbone(config)), hllm_(config.backbone == "hllm") {
  register_module("backbone", backbone_);
  if (!hllm_) {
    // N(0, 1/D) as the reference's learnable positional embedding.
    position_embedding = register_parameter(
        "position_embedding", torch::empty({config.max_len, config.dim}).normal_(0, std::sqrt(1.0 / config.dim)));
  }
  if (config.personalization.enabled()) {
    tokens_ =
        register_module("personalization", std::make_shared<PersonalizationTokens>(config.personalization, config.dim));
  }
  if (hllm_ && config.hllm.vocab_size > 0 && item_llm == ItemLlm::kBuild) {
    item_encoder_ = register_module("item_encoder", std::make_shared<TextItemEncoder>(config));
  }
  if (hllm_ && config.hllm.logit_scale == "learned") {
    log_logit_scale =
        register_parameter("log_logit_scale", torch::full({}, std::log(1.0 / config.hllm.init_temperature)));
  }
}

torch::Tensor SequentialRecommender::logit_scale() {
  if (!log_logit_scale.defined()) return torch::full({}, 1.0 / config_.temperature, torch::dtype(dtype()));
  {
    torch::NoGradGuard no_grad;
    log_logit_scale.clamp_(0.0, std::log(config_.hllm.max_logit_scale));
  }
  return log_logit_scale.exp();
}

torch::ScalarType SequentialRecommender::dtype() const {
  const auto params = parameters();
  return params.empty() ? torch::kFloat32 : params.front().scalar_type();
}

torch::Tensor SequentialRecommender::encode(torch::Tensor x, const torch::Tensor& valid, const AttentionPlan& plan,
                                            const KeyValueMemory* memory, KeyValueMemory* capture) {
  x = torch::dropout(x, config_.dropout, is_training());
  x = x * valid.unsqueeze(-1).to(x.scalar_type());
  return backbone_->forward(x, plan, memory, capture);
}

torch::Tensor SequentialRecommender::forward(const torch::Tensor& item_embeddings, const SequenceBatch& batch) {
  return forward(item_embeddings, batch, config_.personalization.path == "block");
}

torch::Tensor SequentialRecommender::forward(const torch::Tensor& item_embeddings, const SequenceBatch& batch,
                                             bool block_path) {
  const std::optional<int> buckets =
      backbone_->uses_relative_bias() ? std::optional<int>(config_.time_buckets) : std::nullopt;
  torch::Tensor y;
  if (!tokens_) {
    const auto L = item_embeddings.size(1);
    LONGREC_CHECK(L <= config_.max_len, "sequence width {} exceeds model.max_len {}", L, config_.max_len);
    const auto plan = causal_plan(batch.valid, config_.max_len, buckets, batch.times, batch.query_times);
    auto x = hllm_ ? item_embeddings
                   : item_embeddings * std::sqrt(static_cast<double>(config_.dim)) +
                         position_embedding.slice(0, 0, L).unsqueeze(0);
    y = encode(x, batch.valid, plan, nullptr, nullptr);
  } else {
    const auto slots = build_slots(tokens_->specs(), config_.personalization.recent_window, batch);
    const auto plan = personalization_plan(slots, block_path, config_.max_len, buckets);
    auto out = forward_slots(item_embeddings, slots, plan);  // [B, L, D]
    out = torch::cat({out, torch::zeros({out.size(0), 1, out.size(2)}, out.options())}, 1);
    y = out.gather(1, slots.event_slot.unsqueeze(-1).expand({-1, -1, out.size(2)}));  // [B, N, D]
  }
  return l2_normalize(y);
}

torch::Tensor SequentialRecommender::forward_slots(const torch::Tensor& item_embeddings, const SlotSequence& slots,
                                                   const AttentionPlan& plan, const KeyValueMemory* memory,
                                                   KeyValueMemory* capture) {
  LONGREC_CHECK(tokens_ != nullptr, "forward_slots needs a model with personalization tokens");
  LONGREC_CHECK(slots.max_position < config_.max_len,
                "the interleaved sequence reaches position {}, model.max_len is {}", slots.max_position,
                config_.max_len);
  const auto D = item_embeddings.size(-1);
  auto events = item_embeddings.reshape({-1, D});
  if (!hllm_) events = events * std::sqrt(static_cast<double>(config_.dim));
  auto source = torch::cat({events, tokens_->table.to(events.scalar_type()), torch::zeros({1, D}, events.options())});
  auto x = source.index_select(0, slots.source).view({slots.rows, slots.slots, D});
  if (!hllm_) {
    x = x + position_embedding.index_select(0, slots.position.reshape({-1})).view({slots.rows, slots.slots, D});
  }
  return encode(x, slots.valid, plan, memory, capture);
}

namespace {

// Keys per query slot of one history laid out as `layout` (block path: each
// group against [tokens so far, own block], the recent window against [all
// tokens, itself]; dense path: every slot).
double keys_per_slot(const PersonalizationLayout& layout, const std::string& path, std::int64_t width) {
  const double slots = static_cast<double>(layout.length());
  if (path == "dense") return slots;
  double pairs = 0, tokens_before = 0;
  for (const auto& g : layout.groups) {
    const double own = static_cast<double>(g.end - g.begin + g.tokens);
    pairs += own * (tokens_before + own);
    tokens_before += g.tokens;
  }
  const double recent = static_cast<double>(width - layout.recent_begin);
  pairs += recent * (tokens_before + recent);
  return slots > 0 ? pairs / slots : 0.0;
}

}  // namespace

double attended_keys_per_slot(const ModelConfig& config, std::int64_t width) {
  const auto& pt = config.personalization;
  if (!pt.enabled()) return static_cast<double>(width);
  return keys_per_slot(make_layout(pt.group_specs(), pt.recent_window, width), pt.path, width);
}

double SequentialRecommender::forward_flops_per_token(std::int64_t width) const {
  const double scored = config_.num_negatives + 1;
  double slots_per_event = 1, keys = static_cast<double>(width);
  if (tokens_ && width > 0) {
    const auto& pt = config_.personalization;
    const auto layout = make_layout(tokens_->specs(), pt.recent_window, width);
    slots_per_event = static_cast<double>(layout.length()) / static_cast<double>(width);
    keys = keys_per_slot(layout, pt.path, width);
  }
  return backbone_->flops_per_token(static_cast<std::int64_t>(std::llround(keys))) * slots_per_event +
         2.0 * config_.dim * scored;
}

std::unique_ptr<ItemTable> make_item_vectors(SequentialRecommender& model, std::int64_t num_items,
                                             const std::filesystem::path& dataset, torch::Device device) {
  if (model.config().backbone != "hllm") {
    return std::make_unique<LocalItemTable>(num_items, model.config().dim, SparseOptimizerConfig{}, 0, device);
  }
  auto config = model.config();
  auto texts = prepare_item_texts(config, dataset);
  if (texts->num_items() != num_items) {
    throw DataError(fmt::format("{} has {} items with text, the model was trained on {}", dataset.string(),
                                texts->num_items(), num_items));
  }
  LONGREC_CHECK(model.item_encoder() != nullptr, "an hllm model without its item LLM cannot encode item texts");
  return std::make_unique<TextItemVectors>(model.item_encoder(), std::move(texts), config.hllm.encode_chunk);
}

torch::Tensor last_position_vectors(SequentialRecommender& model, ItemVectors& items, const SequenceBatch& batch,
                                    std::int64_t max_attention_elements) {
  if (batch.rows() == 0) {  // a rank without rows in this batch still takes part in the lookup
    items.lookup(torch::zeros({0}, batch.items.options()));
    return torch::zeros({0, model.config().dim}, torch::TensorOptions().device(batch.items.device()));
  }
  // One lookup for the whole batch (a collective when the table is sharded).
  const auto index = unique_ids(batch.items);
  auto rows = items.lookup(index.unique);
  rows.rows = rows.rows.detach();
  const auto embedded = embed(rows, index);  // [B, L, D]
  const auto L = batch.width();
  const auto chunk = std::max<std::int64_t>(1, max_attention_elements / std::max<std::int64_t>(1, L * L));
  std::vector<torch::Tensor> vectors;
  for (std::int64_t begin = 0; begin < batch.rows(); begin += chunk) {
    const auto end = std::min(batch.rows(), begin + chunk);
    const auto part = slice_rows(batch, begin, end);
    auto users = model.forward(embedded.slice(0, begin, end), part);  // [b, L, D]
    auto last = (part.lengths - 1).clamp_min(0);
    vectors.push_back(users.gather(1, last.view({-1, 1, 1}).expand({-1, 1, users.size(2)})).squeeze(1));
  }
  return vectors.size() == 1 ? vectors.front() : torch::cat(vectors, 0);
}

}  // namespace longrec::model
