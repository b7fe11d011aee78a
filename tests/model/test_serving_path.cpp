// The serving path (an explicit history -> history_batch -> last position
// vector, items by LocalItemTable::normalized_rows / normalized_vectors, what
// serve::Recommender runs) gives the user and item vectors of the training
// path (step inputs -> lookup -> forward, as sampled_softmax_loss computes
// them), in float64.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "longrec/model/item_table.h"
#include "longrec/model/sequential_recommender.h"
#include "longrec/model/step_inputs.h"

namespace longrec::model {

namespace {

constexpr std::int64_t kItems = 30, kDim = 8;

ModelConfig config_of(const std::string& backbone, bool tokens) {
  ModelConfig c;
  c.backbone = backbone;
  c.dim = kDim;
  c.blocks = 2;
  c.heads = 2;
  c.max_len = 32;
  c.dropout = 0.0;
  c.time_buckets = 16;
  c.num_negatives = 5;
  if (tokens) {
    c.personalization.segment_len = 4;
    c.personalization.tokens_per_group = 2;
    c.personalization.recent_window = 4;
  }
  return c;
}

// Two training rows of 12 and 9 events with irregular times.
SequenceBatch training_batch() {
  const std::int64_t B = 2, L = 12;
  auto items = torch::zeros({B, L}, torch::kInt64), times = torch::zeros({B, L}, torch::kInt64);
  auto targets = torch::zeros({B, L}, torch::kInt64), query = torch::zeros({B, L}, torch::kInt64);
  const std::int64_t lengths[] = {12, 9};
  for (std::int64_t r = 0; r < B; ++r) {
    for (std::int64_t t = 0; t < lengths[r]; ++t) {
      items[r][t] = 1 + (7 * t + 3 * r) % kItems;
      times[r][t] = 100 * r + t * t + 3 * t;
      targets[r][t] = 1 + (7 * (t + 1) + 3 * r) % kItems;
      query[r][t] = 100 * r + (t + 1) * (t + 1) + 3 * (t + 1);
    }
  }
  SequenceBatch b;
  b.items = items;
  b.times = times;
  b.query_times = query;
  b.lengths = torch::tensor({lengths[0], lengths[1]}, torch::kInt64);
  b.valid = torch::arange(L).unsqueeze(0) < b.lengths.unsqueeze(1);
  b.targets = targets;
  return b;
}

void expect_same_vectors(const std::string& backbone, bool tokens) {
  SCOPED_TRACE(backbone + (tokens ? " with personalization tokens" : ""));
  torch::manual_seed(5);
  SequentialRecommender model(config_of(backbone, tokens));
  model.to(torch::kFloat64);
  model.eval();
  LocalItemTable items(kItems, kDim, {}, 9, torch::kCPU, torch::kFloat64);
  torch::NoGradGuard no_grad;

  // Training path.
  const auto batch = training_batch();
  const auto inputs = prepare_step_inputs(batch, model.config(), kItems, /*negatives_seed=*/3);
  const auto rows = items.lookup(inputs.index.unique);
  const auto embedded = embed(rows, inputs.inputs_index()).view({batch.rows(), batch.width(), kDim});
  const auto users = model.forward(embedded, batch);                              // [B, L, D]
  const auto item_vectors = l2_normalize(embed(rows, inputs.positives_index()));  // [P, D]

  // Serving path, one history at a time: the prefix up to each compared position.
  const auto whole = items.normalized_rows(1, kItems + 1);  // row k: id k + 1
  std::int64_t p = 0;
  for (std::int64_t r = 0; r < batch.rows(); ++r) {
    const auto n = batch.lengths[r].item<std::int64_t>();
    for (std::int64_t t = 0; t < n; ++t, ++p) {
      const auto target = batch.targets[r][t].item<std::int64_t>();
      EXPECT_TRUE(torch::allclose(item_vectors[p], whole[target - 1], 0, 1e-15)) << "item " << target;
      EXPECT_TRUE(torch::allclose(item_vectors[p], items.normalized_vectors(torch::tensor({target}))[0], 0, 1e-15));
      // With tokens the layout depends on the history's length: compare the last position only.
      if (tokens && t + 1 < n) continue;
      std::vector<std::int64_t> history, times;
      for (std::int64_t e = 0; e <= t; ++e) {
        history.push_back(batch.items[r][e].item<std::int64_t>());
        times.push_back(batch.times[r][e].item<std::int64_t>());
      }
      const auto request = history_batch({history}, {times}, {batch.query_times[r][t].item<std::int64_t>()},
                                         longest_history(model.config().max_len, model.config().personalization));
      const auto served = l2_normalize(last_position_vectors(model, items, request))[0];
      EXPECT_TRUE(torch::allclose(served, users[r][t], 0, 1e-12))
          << "row " << r << " position " << t << ": max difference "
          << (served - users[r][t]).abs().max().item<double>();
    }
  }
  EXPECT_EQ(p, inputs.positions());
}

}  // namespace

TEST(ServingPath, HstuGivesTheTrainingUserAndItemVectors) { expect_same_vectors("hstu", false); }
TEST(ServingPath, SasrecGivesTheTrainingUserAndItemVectors) { expect_same_vectors("sasrec", false); }
TEST(ServingPath, TokenHstuGivesTheTrainingUserAndItemVectors) { expect_same_vectors("hstu", true); }
TEST(ServingPath, HllmGivesTheTrainingUserAndItemVectors) { expect_same_vectors("hllm", false); }
TEST(ServingPath, TokenHllmGivesTheTrainingUserAndItemVectors) { expect_same_vectors("hllm", true); }

TEST(L2Normalize, OneEpsilonForEveryCaller) {
  const auto x = torch::tensor({{3.0, 4.0}, {0.0, 0.0}, {1e-9, 0.0}}, torch::kFloat64);
  const auto y = l2_normalize(x);
  EXPECT_TRUE(torch::allclose(y[0], torch::tensor({0.6, 0.8}, torch::kFloat64)));
  EXPECT_TRUE(torch::equal(y[1], torch::zeros({2}, torch::kFloat64)));  // zero stays zero, no NaN
  EXPECT_NEAR(y[2][0].item<double>(), 1e-9 / kL2NormEpsilon, 1e-18);    // below epsilon: divided by it
}

}  // namespace longrec::model
