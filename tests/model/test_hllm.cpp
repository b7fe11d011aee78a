// The HLLM backbone (issue 16): the item LLM over item texts and the user LLM
// over item vectors, each against a reference built from the Llama blocks by
// hand; the InfoNCE loss with its learned logit scale (float64 gradient
// check, clamping, near-duplicate masking); the item-vector cache.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <unistd.h>

#include "longrec/model/backbones/hllm.h"
#include "longrec/core/error.h"
#include "longrec/model/llama/llama.h"
#include "longrec/model/llama/pretrained.h"
#include "longrec/model/sampled_softmax.h"
#include "longrec/model/sequential_recommender.h"
#include "longrec/model/step_inputs.h"
#include "longrec/model/text_items.h"

namespace longrec::model {
namespace {

constexpr std::int64_t kItems = 12;

ModelConfig hllm_config() {
  ModelConfig c;
  c.backbone = "hllm";
  c.dim = 16;
  c.blocks = 2;
  c.heads = 4;
  c.max_len = 16;
  c.dropout = 0.0;
  c.num_negatives = 6;
  c.negatives = "shared";
  c.hllm.kv_heads = 2;
  c.hllm.item_blocks = 1;
  c.hllm.item_heads = 2;
  c.hllm.item_kv_heads = 1;
  c.hllm.vocab_size = 40;
  c.hllm.rope_theta = 500.0;
  return c;
}

// Texts of 0..6 tokens after a 2-token prefix, at most 7 kept.
std::shared_ptr<ItemTextInputs> item_texts() {
  auto texts = std::make_shared<ItemTextInputs>(std::vector<std::int32_t>{1, 5}, 7);
  for (std::int64_t i = 1; i <= kItems; ++i) {
    std::vector<std::int32_t> ids;
    for (std::int64_t t = 0; t < (i * 5) % 7; ++t) ids.push_back(static_cast<std::int32_t>((i * 3 + t * 7) % 38 + 2));
    texts->append(ids);
  }
  return texts;
}

// Random values for every parameter (unit norm weights would hide a missing norm).
void randomize(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.named_parameters()) {
    if (p.key().find("norm") != std::string::npos) {
      p.value().copy_(1.0 + 0.3 * torch::randn_like(p.value()));
    } else if (p.key() != "log_logit_scale") {
      p.value().copy_(0.3 * torch::randn_like(p.value()));
    }
  }
}

SequenceBatch batch_of(const std::vector<std::vector<std::int64_t>>& rows, std::int64_t width) {
  const auto B = static_cast<std::int64_t>(rows.size());
  SequenceBatch b;
  b.items = torch::zeros({B, width}, torch::kInt64);
  b.targets = torch::zeros({B, width}, torch::kInt64);
  b.times = torch::zeros({B, width}, torch::kInt64);
  b.query_times = torch::zeros({B, width}, torch::kInt64);
  b.valid = torch::zeros({B, width}, torch::kBool);
  std::vector<std::int64_t> lengths;
  for (std::int64_t r = 0; r < B; ++r) {
    const auto& row = rows[static_cast<std::size_t>(r)];
    const auto n = static_cast<std::int64_t>(row.size()) - 1;  // the last item is only a target
    for (std::int64_t t = 0; t < n; ++t) {
      b.items[r][t] = row[static_cast<std::size_t>(t)];
      b.targets[r][t] = row[static_cast<std::size_t>(t + 1)];
      b.times[r][t] = 100 * t;
      b.query_times[r][t] = 100 * (t + 1);
      b.valid[r][t] = true;
    }
    lengths.push_back(n);
  }
  b.lengths = torch::tensor(lengths, torch::kInt64);
  return b;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST(HllmItemText, ComposesBosPromptTextAndTruncates) {
  ItemTextInputs texts({1, 9, 8}, 5);
  EXPECT_EQ(texts.append(std::vector<std::int32_t>{4, 4}), 1);
  EXPECT_EQ(texts.append(std::vector<std::int32_t>{}), 2);
  EXPECT_EQ(texts.append(std::vector<std::int32_t>{3, 4, 5, 6}), 3);
  const auto one = texts.item(1), two = texts.item(2), three = texts.item(3);
  EXPECT_EQ(std::vector<std::int32_t>(one.begin(), one.end()), (std::vector<std::int32_t>{1, 9, 8, 4, 4}));
  EXPECT_EQ(std::vector<std::int32_t>(two.begin(), two.end()), (std::vector<std::int32_t>{1, 9, 8}));
  EXPECT_EQ(std::vector<std::int32_t>(three.begin(), three.end()), (std::vector<std::int32_t>{1, 9, 8, 3, 4}));
  EXPECT_EQ(texts.items_without_text(), 1);
  EXPECT_EQ(texts.num_items(), 3);
}

// Each item's vector is the item LLM's last state at [ITEM] after its text, run alone.
TEST(HllmItemEncoder, EqualsEachItemRunAloneThroughTheLlamaBlocks) {
  torch::manual_seed(3);
  for (const std::string pooling : {"item_token", "mean"}) {
    SCOPED_TRACE(pooling);
    auto config = hllm_config();
    config.hllm.pooling = pooling;
    TextItemEncoder encoder(config);
    randomize(encoder);
    encoder.to(torch::kFloat64);
    const auto texts = item_texts();
    const auto ids = torch::tensor({3, 1, 12, 7, 2}, torch::kInt64);
    const auto vectors = encoder.encode(*texts, ids);
    ASSERT_EQ(vectors.sizes(), (std::vector<int64_t>{5, 16}));
    for (std::int64_t i = 0; i < ids.size(0); ++i) {
      const auto tokens = texts->item(ids[i].item<std::int64_t>());
      std::vector<std::int64_t> t(tokens.begin(), tokens.end());
      auto embeds = encoder.llm->embed_tokens(torch::tensor(t, torch::kInt64));
      if (pooling == "item_token") embeds = torch::cat({embeds, encoder.item_token});
      const auto n = embeds.size(0);
      const auto states = encoder.llm->forward_embeds(embeds.unsqueeze(0), torch::arange(n)).last_hidden_state()[0];
      const auto want = pooling == "item_token" ? states[n - 1] : states.mean(0);
      EXPECT_LT(max_diff(vectors[i], want), 1e-12) << "item " << ids[i].item<std::int64_t>();
    }
  }
}

// The user LLM: the HLLM recommender's user vectors equal a Llama model (same weights) run on the
// raw item vectors with a padding mask, after the final norm, L2-normalised.
TEST(HllmUserLlm, EqualsTheLlamaBlocksOnItemVectors) {
  torch::manual_seed(4);
  const auto config = hllm_config();
  SequentialRecommender model(config);
  randomize(model);
  model.to(torch::kFloat64);
  model.eval();
  ASSERT_FALSE(model.position_embedding.defined());
  ASSERT_NE(model.item_encoder(), nullptr);

  const auto batch = batch_of({{1, 4, 9, 2, 5, 7}, {3, 8, 3}, {12, 11, 10, 6}}, 6);
  TextItemVectors items(model.item_encoder(), item_texts(), 5);
  torch::NoGradGuard no_grad;
  const auto table = items.table();  // [I+1, D]
  ASSERT_EQ(table.size(0), kItems + 1);
  const auto x = table.index_select(0, batch.items.view({-1})).view({3, 6, 16});
  const auto users = model.forward(x, batch);

  llama::LlamaModel reference(user_llm_config(config));
  reference->to(torch::kFloat64);
  std::map<std::string, torch::Tensor> state;
  for (const auto& p : model.backbone()->named_parameters()) state["model." + p.key()] = p.value();
  state["model.embed_tokens.weight"] = reference->embed_tokens->weight;
  reference->load_state(state);
  const auto want =
      reference->forward_embeds(x, torch::arange(6), llama::causal_padding_mask(batch.valid)).last_hidden_state();
  const auto want_users = l2_normalize(want);
  for (std::int64_t r = 0; r < 3; ++r) {
    const auto n = batch.lengths[r].item<std::int64_t>();
    EXPECT_LT(max_diff(users[r].narrow(0, 0, n), want_users[r].narrow(0, 0, n)), 1e-12) << "row " << r;
    EXPECT_EQ(users[r].narrow(0, n, 6 - n).abs().max().item<double>(), 0.0) << "padding of row " << r;
  }
  // The cache serves lookups without gradients and equals a fresh encode.
  const auto ids = torch::tensor({2, 9, 12}, torch::kInt64);
  EXPECT_LT(max_diff(items.lookup(ids).rows, model.item_encoder()->encode(*item_texts(), ids)), 1e-12);
  EXPECT_LT(max_diff(items.normalized_vectors(ids), l2_normalize(table.index_select(0, ids))), 1e-15);
}

// Evaluation chunks: the owned slices of 3 ranks cover 1..I once, and any encode chunk gives the
// same vectors.
TEST(HllmItemVectors, OwnedSlicesPartitionTheCatalogueAndChunksAgree) {
  torch::manual_seed(5);
  auto config = hllm_config();
  auto encoder = std::make_shared<TextItemEncoder>(config);
  randomize(*encoder);
  encoder->to(torch::kFloat64);
  const auto texts = item_texts();
  TextItemVectors whole(encoder, texts, 100);
  std::vector<std::int64_t> seen;
  for (int rank = 0; rank < 3; ++rank) {
    TextItemVectors part(encoder, texts, 1 + rank * 2, rank, 3);
    const auto owned = part.owned_ids();
    for (std::int64_t i = 0; i < owned.size(0); ++i) seen.push_back(owned[i].item<std::int64_t>());
    if (owned.size(0) == 0) continue;
    EXPECT_LT(max_diff(part.owned_normalized_vectors(0, owned.size(0)), whole.normalized_vectors(owned)), 1e-12);
  }
  std::vector<std::int64_t> all(kItems);
  std::iota(all.begin(), all.end(), 1);
  EXPECT_EQ(seen, all);
}

// Training: lookups with gradients encode afresh; the catalogue cache that evaluation reads is
// rebuilt after an update (apply_gradients, called after the optimizer step), never stale.
TEST(HllmItemVectors, CacheIsRefreshedAfterEachUpdate) {
  torch::manual_seed(7);
  auto config = hllm_config();
  auto encoder = std::make_shared<TextItemEncoder>(config);
  randomize(*encoder);
  encoder->to(torch::kFloat64);
  TextItemVectors items(encoder, item_texts(), 4);
  const auto ids = torch::tensor({1, 5, 12}, torch::kInt64);
  torch::Tensor before;
  {
    torch::NoGradGuard no_grad;
    before = items.normalized_vectors(ids);
  }
  const auto rows = items.lookup(ids);  // grad mode: a fresh, differentiable encode
  ASSERT_TRUE(rows.rows.requires_grad());
  rows.rows.pow(2).sum().backward();
  ASSERT_TRUE(encoder->item_token.grad().defined());
  {
    torch::NoGradGuard no_grad;
    for (auto& p : encoder->parameters()) p.sub_(0.05 * p.grad());  // what the optimizer step does
  }
  items.apply_gradients(rows, 0.0);
  torch::NoGradGuard no_grad;
  const auto after = items.normalized_vectors(ids);
  EXPECT_GT(max_diff(after, before), 1e-6) << "the update changed nothing";
  EXPECT_LT(max_diff(after, l2_normalize(encoder->encode(*item_texts(), ids))), 1e-12) << "stale cache";
}

// hllm.item_pretrained: the item LLM's sizes from the directory's config.json, its weights loaded;
// sizes that disagree are refused by name.
TEST(HllmItemPretrained, SizesComeFromConfigJsonAndWeightsLoad) {
  const auto dir = std::filesystem::temp_directory_path() / ("longrec-hllm-pretrained-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  torch::manual_seed(8);
  auto lc = llama::LlamaConfig::from_descriptor("llama-d16-l2-h2-kv1-i40-v50");
  lc.rope_theta = 500.0;
  lc.rms_norm_eps = 1e-6;
  llama::LlamaModel saved(lc);
  randomize(*saved);
  llama::save_pretrained(saved, dir);

  auto config = hllm_config();
  config.hllm.item_blocks = config.hllm.item_heads = config.hllm.item_kv_heads = config.hllm.vocab_size = 0;
  config.hllm.item_pretrained = dir.string();
  apply_item_pretrained_sizes(config);
  EXPECT_EQ(config.hllm.item_blocks, 2);
  EXPECT_EQ(config.hllm.item_heads, 2);
  EXPECT_EQ(config.hllm.item_kv_heads, 1);
  EXPECT_EQ(config.hllm.item_ffn_dim, 40);
  EXPECT_EQ(config.hllm.vocab_size, 50);
  SequentialRecommender model(config);
  load_item_pretrained(model);
  auto loaded = model.item_encoder()->llm->named_parameters();
  for (const auto& p : saved->named_parameters()) {
    EXPECT_TRUE(loaded[p.key()].equal(p.value())) << p.key();
  }
  const auto refused_key = [&](ModelConfig c) {
    try {
      apply_item_pretrained_sizes(c);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  auto wide = config;
  wide.dim = 32;
  EXPECT_NE(refused_key(wide).find("model.dim"), std::string::npos) << refused_key(wide);
  auto deeper = config;
  deeper.hllm.item_blocks = 3;
  EXPECT_NE(refused_key(deeper).find("hllm.item_blocks"), std::string::npos) << refused_key(deeper);
  auto theta = config;
  theta.hllm.rope_theta = 10000.0;
  EXPECT_NE(refused_key(theta).find("hllm.rope_theta"), std::string::npos) << refused_key(theta);
  std::filesystem::remove_all(dir);
}

namespace {

struct LossFixture {
  LossFixture() : model((torch::manual_seed(6), hllm_config())) {
    randomize(model);
    model.to(torch::kFloat64);
    batch = batch_of({{1, 4, 9, 2, 5}, {3, 8, 3, 6}}, 4);
    inputs = prepare_step_inputs(batch, model.config(), kItems, 17);
    rows.ids = inputs.index.unique;
    rows.rows = torch::randn({inputs.index.unique.size(0), 16}, torch::kFloat64).requires_grad_(true);
  }
  torch::Tensor loss() { return sampled_softmax_loss(model, inputs, rows, 0); }
  SequentialRecommender model;
  SequenceBatch batch;
  StepInputs inputs;
  ItemRows rows;
};

}  // namespace

TEST(HllmLoss, LogitScaleStartsAtOneOverPointZeroSevenAndIsClamped) {
  LossFixture f;
  EXPECT_NEAR(f.model.log_logit_scale.item<double>(), std::log(1 / 0.07), 1e-6);
  EXPECT_NEAR(f.model.logit_scale().item<double>(), 1 / 0.07, 1e-4);
  {
    torch::NoGradGuard no_grad;
    f.model.log_logit_scale.fill_(9.0);
  }
  EXPECT_NEAR(f.model.logit_scale().item<double>(), 100.0, 1e-9);  // clamped to ln 100 in place
  EXPECT_NEAR(f.model.log_logit_scale.item<double>(), std::log(100.0), 1e-12);
  {
    torch::NoGradGuard no_grad;
    f.model.log_logit_scale.fill_(-2.0);
  }
  EXPECT_NEAR(f.model.logit_scale().item<double>(), 1.0, 1e-12);
  // Fixed: 1 / temperature, no parameter.
  auto fixed = hllm_config();
  fixed.hllm.logit_scale = "fixed";
  fixed.temperature = 0.25;
  SequentialRecommender m(fixed);
  EXPECT_FALSE(m.log_logit_scale.defined());
  EXPECT_DOUBLE_EQ(m.logit_scale().item<double>(), 4.0);
}

// Central differences against autograd for the item rows and the logit scale, float64.
TEST(HllmLoss, GradientCheckFloat64) {
  LossFixture f;
  auto loss = f.loss();
  loss.backward();
  const auto row_grad = f.rows.rows.grad().clone();
  const auto scale_grad = f.model.log_logit_scale.grad().item<double>();
  const double eps = 1e-6;
  const auto numeric = [&](const std::function<void(double)>& nudge) {
    torch::NoGradGuard no_grad;
    nudge(eps);
    const double up = f.loss().item<double>();
    nudge(-2 * eps);
    const double down = f.loss().item<double>();
    nudge(eps);
    return (up - down) / (2 * eps);
  };
  int checked = 0;
  for (std::int64_t r = 0; r < f.rows.rows.size(0); r += 2) {
    for (std::int64_t d = 0; d < 16; d += 5) {
      const double g = numeric([&](double e) { f.rows.rows.data()[r][d] += e; });
      EXPECT_NEAR(g, row_grad[r][d].item<double>(), 1e-6 * std::max(1.0, std::abs(g))) << "row " << r << " dim " << d;
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
  const double g = numeric([&](double e) { f.model.log_logit_scale.data().add_(e); });
  EXPECT_NEAR(g, scale_grad, 1e-6 * std::max(1.0, std::abs(g)));
  // The user LLM's parameters get gradients too.
  EXPECT_TRUE(f.model.backbone()->named_parameters()["layers.0.self_attn.q_proj.weight"].grad().defined());
}

// A negative that is a near copy of the positive (cosine > 0.99) is masked: the loss is lower than
// with the mask off (threshold 1), where it competes with the positive; one at cosine 0.98 is kept
// (the same loss with the mask on and off). (Ids equal to the positive: tests/model/test_loss.cpp.)
TEST(HllmLoss, NearDuplicateNegativesAreMasked) {
  LossFixture f;
  ASSERT_EQ(f.inputs.negatives.size(0), 6);
  torch::NoGradGuard no_grad;
  const auto index_of = [&](std::int64_t id) { return (f.inputs.index.unique == id).nonzero().item<std::int64_t>(); };
  const auto base = f.loss().item<double>();
  // Make negative 0's row a scaled copy of the first positive's row (cosine 1).
  const auto pos_id = f.inputs.positives[0].item<std::int64_t>();
  std::int64_t neg_id = -1;
  for (std::int64_t k = 0; k < f.inputs.negatives.size(0) && neg_id < 0; ++k) {
    if (f.inputs.negatives[k].item<std::int64_t>() != pos_id) neg_id = f.inputs.negatives[k].item<std::int64_t>();
  }
  ASSERT_GE(neg_id, 1) << "every negative drawn is the positive";
  const auto pos_row = f.rows.rows[index_of(pos_id)].clone();
  // Only positions whose positive is pos_id mask it; elsewhere it is an ordinary negative. Check
  // the near-copy rule by comparing against a threshold of 1 (nothing near-masked).
  f.rows.rows[index_of(neg_id)].copy_(pos_row * 3.0);
  const auto masked = f.loss().item<double>();
  auto& hllm = const_cast<ModelConfig&>(f.model.config()).hllm;
  hllm.nce_threshold = 1.0;
  const auto unmasked = f.loss().item<double>();
  EXPECT_NE(masked, unmasked);
  EXPECT_LT(masked, unmasked);  // a negative scoring as high as the positive raises the loss unless masked
  // At cosine 0.98 the negative stays.
  hllm.nce_threshold = 0.99;
  auto orth = torch::randn({16}, torch::kFloat64);
  orth -= (orth.dot(pos_row) / pos_row.dot(pos_row)) * pos_row;
  orth = orth / orth.norm() * pos_row.norm();
  const double c = 0.98;
  f.rows.rows[index_of(neg_id)].copy_(c * pos_row + std::sqrt(1 - c * c) * orth);
  const auto kept = f.loss().item<double>();
  hllm.nce_threshold = 1.0;
  EXPECT_DOUBLE_EQ(kept, f.loss().item<double>());
  (void)base;
}

}  // namespace longrec::model

namespace longrec::model {
namespace {

// Serving a bundle exported without the item LLM builds the model without it
// (ItemLlm::kOmit): the same configuration and every other parameter, so that
// the bundle's weights load by name and serving states keep their signature.
TEST(Hllm, TheItemLlmCanBeOmittedAndEverythingElseStaysTheSame) {
  const auto config = hllm_config();
  SequentialRecommender full(config), omitted(config, ItemLlm::kOmit);
  ASSERT_NE(full.item_encoder(), nullptr);
  EXPECT_EQ(omitted.item_encoder(), nullptr);
  std::vector<std::string> rest;
  for (const auto& p : full.named_parameters()) {
    if (p.key().rfind("item_encoder.", 0) != 0) rest.push_back(p.key());
  }
  std::vector<std::string> names;
  for (const auto& p : omitted.named_parameters()) {
    names.push_back(p.key());
    EXPECT_EQ(p.value().sizes(), full.named_parameters()[p.key()].sizes()) << p.key();
  }
  EXPECT_EQ(names, rest);
  EXPECT_LT(names.size(), full.named_parameters().size());
  EXPECT_EQ(architecture_signature(omitted.config()), architecture_signature(full.config()));
}

}  // namespace
}  // namespace longrec::model
