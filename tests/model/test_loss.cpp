#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "longrec/model/item_table.h"
#include "longrec/model/sampled_softmax.h"
#include "longrec/model/sequential_recommender.h"

namespace longrec::model {

namespace {

ModelConfig loss_config(const std::string& negatives, bool in_batch) {
  ModelConfig c;
  c.backbone = "hstu";
  c.dim = 6;
  c.blocks = 1;
  c.heads = 1;
  c.max_len = 6;
  c.dropout = 0.0;
  c.time_buckets = 8;
  c.num_negatives = 4;
  c.negatives = negatives;
  c.in_batch_negatives = in_batch;
  c.temperature = 0.5;
  return c;
}

SequenceBatch batch() {
  SequenceBatch b;
  b.items = torch::tensor({{1, 2, 3, 4}, {5, 6, 0, 0}}, torch::kInt64);
  b.times = torch::tensor({{1, 2, 3, 4}, {1, 2, 0, 0}}, torch::kInt64);
  b.query_times = torch::tensor({{2, 3, 4, 5}, {2, 3, 0, 0}}, torch::kInt64);
  b.lengths = torch::tensor({4, 2}, torch::kInt64);
  b.valid = torch::arange(4).unsqueeze(0) < b.lengths.unsqueeze(1);
  b.targets = torch::tensor({{2, 3, 4, 7}, {6, 2, 0, 0}}, torch::kInt64);
  return b;
}

}  // namespace

class LossGradient : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(LossGradient, Float64FiniteDifferencesMatchBackward) {
  const auto [negatives, in_batch] = GetParam();
  torch::manual_seed(11);
  SequentialRecommender model(loss_config(negatives, in_batch));
  model.to(torch::kFloat64);
  LocalItemTable items(8, 6, {}, 3, torch::kCPU, torch::kFloat64);
  const auto b = batch();
  const auto loss_of = [&](ItemRows* rows_out) {
    auto out = sampled_softmax_loss(model, items, b, /*negatives_seed=*/42);
    if (rows_out != nullptr) *rows_out = out.rows;
    return out.loss;
  };
  ItemRows rows;
  auto loss = loss_of(&rows);
  loss.backward();
  // Items 1..7 appear in inputs and targets; negatives may add item 8.
  EXPECT_GE(rows.ids.numel(), 7);
  EXPECT_LE(rows.ids.numel(), 8);

  // Item rows: perturb the table itself and compare with the rows' gradient.
  auto& table = items.weight();
  const double eps = 1e-6;
  torch::NoGradGuard no_grad;
  for (std::int64_t u = 0; u < rows.ids.numel(); ++u) {
    const auto id = rows.ids[u].item<std::int64_t>();
    for (std::int64_t d = 0; d < 6; ++d) {
      const double original = table[id][d].item<double>();
      table[id][d] = original + eps;
      const double plus = loss_of(nullptr).item<double>();
      table[id][d] = original - eps;
      const double minus = loss_of(nullptr).item<double>();
      table[id][d] = original;
      EXPECT_NEAR(rows.rows.grad()[u][d].item<double>(), (plus - minus) / (2 * eps), 1e-6) << "item " << id;
    }
  }
  // One dense parameter: the output projection of the block.
  auto weight = model.named_parameters()["backbone.block0.output.weight"];
  auto analytic = weight.grad().clone();
  for (std::int64_t i = 0; i < weight.numel(); i += 5) {
    auto flat = weight.view({-1});
    const double original = flat[i].item<double>();
    flat[i] = original + eps;
    const double plus = loss_of(nullptr).item<double>();
    flat[i] = original - eps;
    const double minus = loss_of(nullptr).item<double>();
    flat[i] = original;
    EXPECT_NEAR(analytic.view({-1})[i].item<double>(), (plus - minus) / (2 * eps), 1e-6);
  }
}

INSTANTIATE_TEST_SUITE_P(Negatives, LossGradient,
                         ::testing::Values(std::make_tuple(std::string("per_position"), false),
                                           std::make_tuple(std::string("shared"), false),
                                           std::make_tuple(std::string("per_position"), true)));

TEST(Loss, MatchesAHandComputedSoftmaxAndMasksTheTargetAmongNegatives) {
  torch::manual_seed(1);
  auto config = loss_config("shared", false);
  SequentialRecommender model(config);
  model.to(torch::kFloat64);
  model.eval();
  LocalItemTable items(8, 6, {}, 3, torch::kCPU, torch::kFloat64);
  const auto b = batch();
  auto out = sampled_softmax_loss(model, items, b, /*negatives_seed=*/7);
  EXPECT_EQ(out.positions, 6);

  // Recompute: the same shared negatives from the same generator state.
  auto replay = at::make_generator<at::CPUGeneratorImpl>(7);
  auto negatives = at::randint(1, 9, {4}, replay, torch::kInt64);
  torch::NoGradGuard no_grad;
  auto users = model.forward(items.weight().index_select(0, b.items.reshape({-1})).view({2, 4, 6}), b);
  auto normalized = items.weight() / items.weight().norm(2, 1, true).clamp_min(1e-6);
  double total = 0;
  int count = 0;
  for (int r = 0; r < 2; ++r) {
    for (int t = 0; t < 4; ++t) {
      const auto target = b.targets[r][t].item<std::int64_t>();
      if (target == 0) continue;
      const double positive = (users[r][t] * normalized[target]).sum().item<double>() / 0.5;
      double denominator = std::exp(positive);
      for (int k = 0; k < 4; ++k) {
        const auto negative = negatives[k].item<std::int64_t>();
        if (negative == target) continue;  // masked
        denominator += std::exp((users[r][t] * normalized[negative]).sum().item<double>() / 0.5);
      }
      total += -(positive - std::log(denominator));
      ++count;
    }
  }
  EXPECT_NEAR(out.loss.item<double>(), total / count, 1e-9);
}

TEST(ItemTable, RowwiseAdagradTouchesOnlyTheStepsRows) {
  LocalItemTable items(5, 3, {"rowwise_adagrad", 0.1, 1e-8}, 1);
  auto before = items.weight().clone();
  auto rows = items.lookup(torch::tensor({2, 4}, torch::kInt64));
  (rows.rows * torch::tensor({{1.0, 2.0, 3.0}, {0.0, 0.0, 3.0}})).sum().backward();
  items.apply_gradients(rows, 0.1);
  auto after = items.weight();
  for (int id : {0, 1, 3, 5}) EXPECT_TRUE(torch::equal(before[id], after[id])) << id;
  // Row 2: accumulator = mean(1, 4, 9) = 14/3; step = 0.1 * g / sqrt(14/3).
  auto expected = before[2] - 0.1 * torch::tensor({1.0, 2.0, 3.0}) / std::sqrt(14.0 / 3.0);
  EXPECT_TRUE(torch::allclose(after[2], expected.to(torch::kFloat32), 1e-6, 1e-7));
}

}  // namespace longrec::model

namespace longrec::model {

// Evaluation runs the forward on row chunks to bound attention memory; the
// user vectors must not depend on the chunk size (rows are independent).
TEST(LastPositionVectors, RowChunksGiveTheWholeBatchsVectors) {
  for (const std::string backbone : {"hstu", "sasrec"}) {
    torch::manual_seed(5);
    auto config = loss_config("per_position", false);
    config.backbone = backbone;
    config.max_len = 12;
    config.blocks = 2;
    SequentialRecommender model(config);
    model.to(torch::kFloat64);
    model.eval();
    LocalItemTable items(8, 6, {}, 3, torch::kCPU, torch::kFloat64);
    SequenceBatch b;
    const std::int64_t B = 7, L = 12;
    b.lengths = torch::tensor({12, 3, 7, 1, 12, 9, 5}, torch::kInt64);
    b.valid = torch::arange(L).unsqueeze(0) < b.lengths.unsqueeze(1);
    b.items = torch::randint(1, 9, {B, L}, torch::kInt64) * b.valid;
    b.times = torch::arange(L).expand({B, L}).contiguous() * 10 * b.valid;
    b.query_times = (b.times + 10) * b.valid;
    b.targets = torch::randint(1, 9, {B}, torch::kInt64);
    b.sample_keys.assign(B, 0);
    torch::NoGradGuard no_grad;
    const auto whole = last_position_vectors(model, items, b);
    ASSERT_EQ(whole.sizes(), (std::vector<std::int64_t>{B, 6}));
    for (std::int64_t budget : {std::int64_t{1}, 2 * L * L, 3 * L * L, 6 * L * L}) {
      const auto chunked = last_position_vectors(model, items, b, budget);
      EXPECT_TRUE(torch::allclose(chunked, whole, 0, 1e-12)) << backbone << " budget " << budget;
    }
  }
}

}  // namespace longrec::model
