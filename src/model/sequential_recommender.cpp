#include "longrec/model/sequential_recommender.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>

#include "longrec/core/error.h"
#include "longrec/core/rng.h"
#include "longrec/model/sampled_scores.h"

namespace longrec::model {

SequentialRecommender::SequentialRecommender(const ModelConfig& config)
    : config_(config), backbone_(make_backbone(config)) {
  register_module("backbone", backbone_);
  // N(0, 1/D) as the reference's learnable positional embedding.
  position_embedding = register_parameter(
      "position_embedding", torch::empty({config.max_len, config.dim}).normal_(0, std::sqrt(1.0 / config.dim)));
  if (config.personalization.enabled()) {
    tokens_ = register_module("personalization", std::make_shared<PersonalizationTokens>(config.personalization,
                                                                                         config.dim));
  }
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
    auto x = item_embeddings * std::sqrt(static_cast<double>(config_.dim)) +
             position_embedding.slice(0, 0, L).unsqueeze(0);
    y = encode(x, batch.valid, plan, nullptr, nullptr);
  } else {
    const auto slots = build_slots(tokens_->specs(), config_.personalization.recent_window, batch);
    const auto plan = personalization_plan(slots, block_path, config_.max_len, buckets);
    auto out = forward_slots(item_embeddings, slots, plan);  // [B, L, D]
    out = torch::cat({out, torch::zeros({out.size(0), 1, out.size(2)}, out.options())}, 1);
    y = out.gather(1, slots.event_slot.unsqueeze(-1).expand({-1, -1, out.size(2)}));  // [B, N, D]
  }
  return y / y.norm(2, -1, true).clamp_min(1e-6);
}

torch::Tensor SequentialRecommender::forward_slots(const torch::Tensor& item_embeddings, const SlotSequence& slots,
                                                   const AttentionPlan& plan, const KeyValueMemory* memory,
                                                   KeyValueMemory* capture) {
  LONGREC_CHECK(tokens_ != nullptr, "forward_slots needs a model with personalization tokens");
  LONGREC_CHECK(slots.max_position < config_.max_len,
                "the interleaved sequence reaches position {}, model.max_len is {}", slots.max_position,
                config_.max_len);
  const auto D = item_embeddings.size(-1);
  auto events = item_embeddings.reshape({-1, D}) * std::sqrt(static_cast<double>(config_.dim));
  auto source = torch::cat({events, tokens_->table.to(events.scalar_type()), torch::zeros({1, D}, events.options())});
  auto x = source.index_select(0, slots.source).view({slots.rows, slots.slots, D}) +
           position_embedding.index_select(0, slots.position.reshape({-1})).view({slots.rows, slots.slots, D});
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

namespace {

torch::Tensor l2_normalize(const torch::Tensor& x) { return x / x.norm(2, -1, true).clamp_min(1e-6); }

}  // namespace

TrainingLoss sampled_softmax_loss(SequentialRecommender& model, ItemEmbedding& items, const SequenceBatch& batch,
                                  std::uint64_t negatives_seed, std::int64_t loss_positions) {
  const auto& config = model.config();
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(batch.items.device());
  auto supervised = batch.targets > 0;                      // [B, L]
  auto positives = batch.targets.masked_select(supervised);  // [P]
  const auto P = positives.size(0);
  const auto K = static_cast<std::int64_t>(config.num_negatives);

  torch::Tensor negatives;  // per_position: [P, K]; shared: [K]
  if (K > 0 && config.negatives == "shared") {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(negatives_seed);
    negatives = at::randint(1, items.num_items() + 1, {K}, generator, torch::kInt64).to(i64.device());
  } else if (K > 0) {
    // Row by row from (seed, sample key): the same draws whichever rank holds the row.
    const auto per_row = supervised.sum(1).to(torch::kCPU);
    // Batches built by hand (tests) may come without keys: the row index then.
    const auto row_key = [&](std::int64_t r) {
      return r < static_cast<std::int64_t>(batch.sample_keys.size()) ? batch.sample_keys[r]
                                                                      : static_cast<std::uint64_t>(r);
    };
    std::vector<torch::Tensor> parts;
    for (std::int64_t r = 0; r < batch.rows(); ++r) {
      const auto n = per_row[r].item<std::int64_t>();
      if (n == 0) continue;
      auto generator = at::make_generator<at::CPUGeneratorImpl>(derive_seed(negatives_seed, row_key(r)));
      parts.push_back(at::randint(1, items.num_items() + 1, {n, K}, generator, torch::kInt64));
    }
    negatives = parts.empty() ? torch::zeros({0, K}, torch::kInt64) : torch::cat(parts);
    negatives = negatives.to(i64.device());
  } else {
    negatives = torch::zeros({0}, i64);
  }

  // One gather for every id the step reads: inputs, targets, negatives.
  auto all_ids = torch::cat({batch.items.reshape({-1}), positives, negatives.reshape({-1})});
  const auto index = unique_ids(all_ids);
  TrainingLoss out;
  out.rows = items.gather(index.unique);
  out.positions = P;
  const auto n_inputs = batch.items.numel();
  const auto slice = [&](std::int64_t begin, std::int64_t end) {
    return UniqueIds{index.unique, index.inverse.slice(0, begin, end)};
  };
  auto inputs = embed(out.rows, slice(0, n_inputs)).view({batch.rows(), batch.width(), -1});
  auto target_rows = l2_normalize(embed(out.rows, slice(n_inputs, n_inputs + P)));  // [P, D]

  auto users = model.forward(inputs, batch);                                          // [B, L, D]
  auto queries = users.reshape({-1, users.size(-1)}).index_select(0, supervised.reshape({-1}).nonzero().squeeze(1));
  const double inv_t = 1.0 / config.temperature;
  auto positive_logits = (queries * target_rows).sum(-1, true) * inv_t;  // [P, 1]
  std::vector<torch::Tensor> logits{positive_logits};
  constexpr double kMasked = -5e4;  // as the reference: a negative equal to the target
  if (K > 0) {
    const auto negative_index = index.inverse.slice(0, n_inputs + P);
    torch::Tensor negative_logits, same;
    if (config.negatives == "shared") {
      auto negative_rows = l2_normalize(embed(out.rows, slice(n_inputs + P, all_ids.size(0))));  // [K, D]
      negative_logits = torch::matmul(queries, negative_rows.t()) * inv_t;  // [P, K]
      same = positives.unsqueeze(1) == negatives.unsqueeze(0);
    } else {
      // Each position against its own K rows, without a [P, K, D] gather.
      negative_logits = sampled_scores(queries, l2_normalize(out.rows.rows), negative_index.view({P, K})) * inv_t;
      same = positives.unsqueeze(1) == negatives;
    }
    logits.push_back(negative_logits.masked_fill(same, kMasked));
  }
  if (config.in_batch_negatives) {
    auto in_batch = torch::matmul(queries, target_rows.t()) * inv_t;  // [P, P]
    logits.push_back(in_batch.masked_fill(positives.unsqueeze(1) == positives.unsqueeze(0), kMasked));
  }
  auto all_logits = torch::cat(logits, 1);
  const auto normalizer = loss_positions > 0 ? loss_positions : std::max<std::int64_t>(P, 1);
  out.loss = -torch::log_softmax(all_logits, 1).select(1, 0).sum() / static_cast<double>(normalizer);
  return out;
}

torch::Tensor last_position_vectors(SequentialRecommender& model, ItemEmbedding& items, const SequenceBatch& batch,
                                    std::int64_t max_attention_elements) {
  if (batch.rows() == 0) {  // a rank without rows in this batch still takes part in the gather
    items.gather(torch::zeros({0}, batch.items.options()));
    return torch::zeros({0, model.config().dim}, torch::TensorOptions().device(batch.items.device()));
  }
  // One gather for the whole batch (a collective when the table is sharded).
  const auto index = unique_ids(batch.items);
  auto rows = items.gather(index.unique);
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
