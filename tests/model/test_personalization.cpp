#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fmt/ranges.h>

#include <random>

#include "longrec/core/error.h"
#include "longrec/model/personalization.h"
#include "longrec/model/sequential_recommender.h"

namespace longrec::model {

namespace {

ModelConfig pt_config(const std::string& backbone, PersonalizationConfig pt) {
  ModelConfig c;
  c.backbone = backbone;
  c.dim = 8;
  c.blocks = 2;
  c.heads = 2;
  c.max_len = 64;
  c.dropout = 0.0;
  c.time_buckets = 16;
  c.num_negatives = 5;
  c.personalization = std::move(pt);
  if (backbone == "hllm") c.hllm.kv_heads = 1;  // grouped-query attention too
  return c;
}

PersonalizationConfig uniform(int S, int K, int R, int max_groups = 8) {
  PersonalizationConfig p;
  p.segment_len = S;
  p.tokens_per_group = K;
  p.recent_window = R;
  p.max_groups = max_groups;
  return p;
}

// A left-aligned batch with the given lengths; increasing random times, each
// position's query time the next event's.
SequenceBatch random_batch(const std::vector<std::int64_t>& lengths, std::uint64_t seed, std::int64_t items = 50) {
  std::mt19937_64 rng(seed);
  const auto B = static_cast<std::int64_t>(lengths.size());
  const auto N = std::max<std::int64_t>(1, *std::max_element(lengths.begin(), lengths.end()));
  auto ids = torch::zeros({B, N}, torch::kInt64), times = torch::zeros({B, N}, torch::kInt64),
       query = torch::zeros({B, N}, torch::kInt64);
  for (std::int64_t b = 0; b < B; ++b) {
    std::int64_t t = 1000;
    std::vector<std::int64_t> ts;
    for (std::int64_t e = 0; e <= lengths[b]; ++e) ts.push_back(t += static_cast<std::int64_t>(rng() % 5000));
    for (std::int64_t e = 0; e < lengths[b]; ++e) {
      ids[b][e] = static_cast<std::int64_t>(1 + rng() % items);
      times[b][e] = ts[e];
      query[b][e] = ts[e + 1];
    }
  }
  SequenceBatch s;
  s.items = ids;
  s.times = times;
  s.query_times = query;
  s.lengths = torch::tensor(lengths, torch::kInt64);
  s.valid = torch::arange(N).unsqueeze(0) < s.lengths.unsqueeze(1);
  return s;
}

struct Outputs {
  torch::Tensor users;                         // [B, N, D]
  std::map<std::string, torch::Tensor> grads;  // parameter and input gradients
};

Outputs run(SequentialRecommender& model, const SequenceBatch& batch, const torch::Tensor& embeddings,
            const torch::Tensor& probe, bool block_path) {
  model.zero_grad();
  auto input = embeddings.clone().requires_grad_(true);
  auto users = model.forward(input, batch, block_path);
  (users * probe * batch.valid.unsqueeze(-1)).sum().backward();
  Outputs out{users.detach(), {{"input", input.grad().clone()}}};
  for (const auto& p : model.named_parameters()) {
    if (p.value().grad().defined()) out.grads[p.key()] = p.value().grad().clone();
  }
  return out;
}

void expect_paths_equal(const std::string& backbone, const PersonalizationConfig& pt,
                        const std::vector<std::int64_t>& lengths, std::uint64_t seed) {
  SCOPED_TRACE(fmt::format("{} S={} K={} R={} groups='{}' lengths={}", backbone, pt.segment_len, pt.tokens_per_group,
                           pt.recent_window, pt.groups, fmt::join(lengths, ",")));
  torch::manual_seed(static_cast<std::int64_t>(seed));
  SequentialRecommender model(pt_config(backbone, pt));
  model.to(torch::kFloat64);
  model.eval();
  const auto batch = random_batch(lengths, seed);
  auto embeddings = torch::randn({batch.rows(), batch.width(), 8}, torch::kFloat64);
  auto probe = torch::randn({batch.rows(), batch.width(), 8}, torch::kFloat64);
  const auto dense = run(model, batch, embeddings, probe, false);
  const auto block = run(model, batch, embeddings, probe, true);
  const auto valid = batch.valid.unsqueeze(-1);
  EXPECT_TRUE(torch::allclose(dense.users * valid, block.users * valid, 1e-12, 1e-12))
      << "max difference " << ((dense.users - block.users) * valid).abs().max().item<double>();
  ASSERT_EQ(dense.grads.size(), block.grads.size());
  for (const auto& [name, grad] : dense.grads) {
    ASSERT_TRUE(block.grads.count(name)) << name;
    EXPECT_TRUE(torch::allclose(grad, block.grads.at(name), 1e-10, 1e-12))
        << name << " max difference " << (grad - block.grads.at(name)).abs().max().item<double>();
  }
}

}  // namespace

TEST(PersonalizationLayout, CutsTheOldPartIntoSegmentsFromTheOldestEvent) {
  const auto specs = uniform(3, 2, 3).group_specs();
  // 10 events, R = 3: old part 7 = [0,3) [3,6) [6,7) (partial), recent [7,10).
  const auto layout = make_layout(specs, 3, 10);
  ASSERT_EQ(layout.groups.size(), 3u);
  EXPECT_EQ(layout.groups[0].begin, 0);
  EXPECT_EQ(layout.groups[0].end, 3);
  EXPECT_EQ(layout.groups[1].end, 6);
  EXPECT_EQ(layout.groups[2].begin, 6);
  EXPECT_EQ(layout.groups[2].end, 7);
  EXPECT_TRUE(layout.groups[2].partial);
  EXPECT_FALSE(layout.groups[1].partial);
  EXPECT_EQ(layout.groups[2].first_token, 4);
  EXPECT_EQ(layout.recent_begin, 7);
  EXPECT_EQ(layout.length(), 16);
  // Shorter than the recent window: no tokens at all.
  EXPECT_TRUE(make_layout(specs, 3, 3).groups.empty());
  // R = 0: every event is in a segment.
  EXPECT_EQ(make_layout(specs, 0, 6).groups.size(), 2u);
  EXPECT_EQ(make_layout(specs, 0, 6).recent_begin, 6);
}

TEST(PersonalizationLayout, ExplicitGroupsAndTheirLimits) {
  PersonalizationConfig p;
  p.groups = "2:1,5:3,9:2";
  p.recent_window = 2;
  const auto specs = p.group_specs();
  ASSERT_EQ(specs.size(), 3u);
  EXPECT_EQ(p.total_tokens(), 6);
  const auto layout = make_layout(specs, 2, 8);  // old part 6: [0,2) [2,5) [5,6) partial
  ASSERT_EQ(layout.groups.size(), 3u);
  EXPECT_EQ(layout.groups[1].tokens, 3);
  EXPECT_TRUE(layout.groups[2].partial);
  EXPECT_EQ(layout.length(), 8 + 6);
  EXPECT_THROW(make_layout(specs, 2, 12), DataError);  // needs a 4th group
  EXPECT_EQ(longest_history(64, p), 11);
}

TEST(PersonalizationLayout, ImpossibleConfigurationsNameTheKey) {
  const auto key_of = [](const auto& f) {
    try {
      f();
    } catch (const ConfigError& e) {
      return e.key();
    }
    return std::string("no error");
  };
  auto p = uniform(4, 2, 8);
  p.tokens_per_group = 0;
  EXPECT_EQ(key_of([&] { validate_personalization_config(p, 64); }), "personalization.tokens_per_group");
  p = uniform(4, 2, 64);
  EXPECT_EQ(key_of([&] { validate_personalization_config(p, 64); }), "personalization.recent_window");
  p = uniform(4, 2, 8);
  p.groups = "4:2,3:2";
  EXPECT_EQ(key_of([&] { validate_personalization_config(p, 64); }), "personalization.groups");
  p.groups = "4:2,8";
  EXPECT_EQ(key_of([&] { validate_personalization_config(p, 64); }), "personalization.groups");
  p.groups = "4:2,8:2,12:2";
  p.max_groups = 2;
  EXPECT_EQ(key_of([&] { validate_personalization_config(p, 64); }), "personalization.groups");
  // 3 groups of 4 cover 12 old events: a 30-event history needs more.
  p = uniform(4, 2, 8, 3);
  EXPECT_EQ(key_of([&] { check_model_fits_history(64, p, 30); }), "data.max_len");
  EXPECT_EQ(key_of([&] { check_model_fits_history(64, p, 20); }), "no error");
  // 20 events + 3 x 2 tokens = 26 positions.
  EXPECT_EQ(key_of([&] { check_model_fits_history(25, p, 20); }), "data.max_len");
  EXPECT_EQ(key_of([&] { check_model_fits_history(26, p, 20); }), "no error");
}

// The dense plan's pairs, read back by position, equal the structure design
// section 4 states in words.
TEST(PersonalizationPlan, DenseMaskIsTheDesignStructure) {
  const PersonalizationConfig p = [] {
    PersonalizationConfig c;
    c.groups = "3:2,5:1,9:2";
    c.recent_window = 2;
    return c;
  }();
  const auto batch = random_batch({10, 4}, 7);  // row 0: groups [0,3) [3,5) [5,8) partial, recent [8,10)
  const auto slots = build_slots(p.group_specs(), p.recent_window, batch);
  const auto plan = personalization_plan(slots, false, 64, 16);
  const auto allowed = plan.groups[0].allowed;  // [B, 1, L, L]
  for (std::int64_t b = 0; b < 2; ++b) {
    const auto n = batch.lengths[b].item<std::int64_t>();
    const auto layout = make_layout(p.group_specs(), p.recent_window, n);
    // The interleaved sequence written out: (is token, group, event or token index).
    struct Entry {
      bool token;
      int group;  // groups.size() for the recent window
      std::int64_t index;
    };
    std::vector<Entry> sequence;
    for (std::size_t g = 0; g < layout.groups.size(); ++g) {
      for (auto e = layout.groups[g].begin; e < layout.groups[g].end; ++e) sequence.push_back({false, int(g), e});
      for (int k = 0; k < layout.groups[g].tokens; ++k) sequence.push_back({true, int(g), k});
    }
    const int recent = static_cast<int>(layout.groups.size());
    for (auto e = layout.recent_begin; e < n; ++e) sequence.push_back({false, recent, e});
    const auto sees = [&](const Entry& q, const Entry& k) {
      if (q.token) {  // its segment, earlier tokens, earlier tokens of its own group
        if (!k.token) return k.group == q.group;
        return k.group < q.group || (k.group == q.group && k.index <= q.index);
      }
      if (k.token) return k.group < q.group;            // every earlier token
      return k.group == q.group && k.index <= q.index;  // own segment (or window), causally
    };
    // Map positions to slots.
    std::vector<std::int64_t> slot_of(sequence.size(), -1);
    for (std::int64_t s = 0; s < slots.slots; ++s) {
      if (slots.valid[b][s].item<bool>())
        slot_of[static_cast<std::size_t>(slots.position[b][s].item<std::int64_t>())] = s;
    }
    for (std::size_t i = 0; i < sequence.size(); ++i) {
      ASSERT_GE(slot_of[i], 0);
      EXPECT_EQ(slots.is_token[b][slot_of[i]].item<bool>(), sequence[i].token);
      for (std::size_t j = 0; j < sequence.size(); ++j) {
        EXPECT_EQ(allowed[b][0][slot_of[i]][slot_of[j]].item<bool>(), sees(sequence[i], sequence[j]))
            << "row " << b << " position " << i << " -> " << j;
      }
    }
    // Padding slots see nothing and are seen by nothing.
    const auto pad = slots.valid[b].logical_not();
    EXPECT_FALSE(allowed[b][0].index({pad}).any().item<bool>());
    EXPECT_FALSE(allowed[b][0].index({torch::indexing::Slice(), pad}).any().item<bool>());
  }
}

TEST(PersonalizationPlan, BlockPathEqualsDensePathForwardAndGradientsInFloat64) {
  for (const std::string backbone : {"hstu", "sasrec", "hllm"}) {
    expect_paths_equal(backbone, uniform(4, 2, 3), {11, 5, 2}, 1);  // several groups, partial, short rows
    expect_paths_equal(backbone, uniform(5, 3, 4), {9, 4, 8}, 2);   // one group
    expect_paths_equal(backbone, uniform(3, 1, 0), {7, 9, 1}, 3);   // R = 0
    expect_paths_equal(backbone, uniform(6, 2, 2), {3, 2}, 4);      // shorter than one segment
    PersonalizationConfig uneven;
    uneven.groups = "2:1,5:3,9:2";
    uneven.recent_window = 2;
    expect_paths_equal(backbone, uneven, {11, 6, 3, 8}, 5);  // uneven segments and token counts
  }
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 12; ++trial) {
    const int S = 1 + static_cast<int>(rng() % 5), K = 1 + static_cast<int>(rng() % 3), R = static_cast<int>(rng() % 6);
    const auto pt = uniform(S, K, R, 6);
    std::vector<std::int64_t> lengths;
    for (int b = 0; b < 3; ++b) lengths.push_back(1 + static_cast<std::int64_t>(rng() % (6 * S + R)));
    const char* backbones[] = {"hstu", "sasrec", "hllm"};
    expect_paths_equal(backbones[trial % 3], pt, lengths, 100 + trial);
  }
}

TEST(PersonalizationPlan, HistoriesWithinTheRecentWindowMatchThePlainModel) {
  torch::manual_seed(4);
  SequentialRecommender plain(pt_config("hstu", {}));
  torch::manual_seed(4);
  SequentialRecommender with_tokens(pt_config("hstu", uniform(4, 2, 6)));
  for (auto* m : {&plain, &with_tokens}) {
    m->to(torch::kFloat64);
    m->eval();
  }
  const auto batch = random_batch({6, 3, 5}, 9);
  auto embeddings = torch::randn({3, 6, 8}, torch::kFloat64);
  const auto valid = batch.valid.unsqueeze(-1);
  auto a = plain.forward(embeddings, batch) * valid;
  auto b = with_tokens.forward(embeddings, batch) * valid;
  EXPECT_TRUE(torch::allclose(a, b, 1e-12, 1e-12)) << (a - b).abs().max().item<double>();
}

TEST(PersonalizationPlan, OldEventsReachRecentOnesOnlyThroughTokens) {
  torch::manual_seed(6);
  SequentialRecommender model(pt_config("sasrec", uniform(4, 2, 3)));
  model.to(torch::kFloat64);
  model.eval();
  const auto batch = random_batch({11}, 3);  // groups [0,4) [4,8), recent [8,11)
  auto embeddings = torch::randn({1, 11, 8}, torch::kFloat64).requires_grad_(true);
  auto users = model.forward(embeddings, batch, true);
  // The first event of segment 2 depends on segment 1 only through T_1.
  // (A random probe: SASRec's final LayerNorm output sums to zero.)
  (users[0][4] * torch::randn({8}, torch::kFloat64)).sum().backward();
  EXPECT_GT(embeddings.grad()[0].slice(0, 0, 4).abs().sum().item<double>(), 0);  // via the tokens
  EXPECT_EQ(embeddings.grad()[0].slice(0, 5).abs().sum().item<double>(), 0);     // nothing later
  EXPECT_GT(model.tokens()->table.grad().slice(0, 0, 2).abs().sum().item<double>(), 0);
  EXPECT_EQ(model.tokens()->table.grad().slice(0, 2).abs().sum().item<double>(), 0);
}

TEST(PersonalizationPlan, BlockPathComputesLinearlyManyPairs) {
  auto config = pt_config("hstu", uniform(8, 2, 8, 64));
  // 40 events: 4 groups of 8 (+2 tokens each) and 8 recent; block pairs per
  // group g: 10 x (2g + 10), recent 8 x (8 + 8).
  const double pairs = 10 * 10 + 10 * 12 + 10 * 14 + 10 * 16 + 8 * 16;
  EXPECT_DOUBLE_EQ(attended_keys_per_slot(config, 40), pairs / 48);
  config.personalization.path = "dense";
  EXPECT_DOUBLE_EQ(attended_keys_per_slot(config, 40), 48);
}

}  // namespace longrec::model
