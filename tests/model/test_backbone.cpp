#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "longrec/model/backbone.h"
#include "longrec/model/backbones/hstu.h"
#include "longrec/model/backbones/sasrec.h"
#include "longrec/model/sequential_recommender.h"

namespace longrec::model {

namespace {

ModelConfig small_config(const std::string& backbone) {
  ModelConfig c;
  c.backbone = backbone;
  c.dim = 8;
  c.blocks = 2;
  c.heads = 2;
  c.max_len = 7;
  c.dropout = 0.0;
  c.time_buckets = 16;
  c.num_negatives = 5;
  return c;
}

// Two rows of lengths 5 and 3 in a batch of width 5.
SequenceBatch small_batch() {
  SequenceBatch b;
  b.items = torch::tensor({{3, 1, 4, 1, 5}, {9, 2, 6, 0, 0}}, torch::kInt64);
  b.times = torch::tensor({{10, 20, 25, 100, 1000}, {5, 6, 90, 0, 0}}, torch::kInt64);
  b.query_times = torch::tensor({{20, 25, 100, 1000, 5000}, {6, 90, 91, 0, 0}}, torch::kInt64);
  b.lengths = torch::tensor({5, 3}, torch::kInt64);
  b.valid = torch::arange(5).unsqueeze(0) < b.lengths.unsqueeze(1);
  b.targets = torch::tensor({{1, 4, 1, 5, 9}, {2, 6, 7, 0, 0}}, torch::kInt64);
  return b;
}

double bucket(std::int64_t dt) {
  return std::clamp(std::floor(std::log(std::max<double>(std::abs(dt), 1)) / 0.301), 0.0, 16.0);
}

// Central differences of f with respect to every element of t (float64).
torch::Tensor numeric_gradient(const std::function<torch::Tensor()>& f, torch::Tensor t, double eps = 1e-6) {
  torch::NoGradGuard no_grad;
  auto grad = torch::zeros_like(t);
  auto flat = t.view({-1});
  auto g = grad.view({-1});
  for (std::int64_t i = 0; i < flat.numel(); ++i) {
    const double original = flat[i].item<double>();
    flat[i] = original + eps;
    const double plus = f().item<double>();
    flat[i] = original - eps;
    const double minus = f().item<double>();
    flat[i] = original;
    g[i] = (plus - minus) / (2 * eps);
  }
  return grad;
}

}  // namespace

TEST(Hstu, TimeBucketsFollowTheReferenceFormula) {
  const auto b = small_batch();
  const auto plan = causal_plan(b.valid, 7, 16, b.times, b.query_times);
  const auto buckets = plan.groups[0].time_bucket.squeeze(1);  // [B, L, L]
  for (int i = 0; i < 5; ++i) {
    for (int j = 0; j < 5; ++j) {
      const auto dt = b.query_times[0][i].item<std::int64_t>() - b.times[0][j].item<std::int64_t>();
      EXPECT_EQ(buckets[0][i][j].item<std::int64_t>(), bucket(dt)) << i << "," << j;
    }
  }
}

TEST(Hstu, BatchedAttentionEqualsANaivePerPositionLoop) {
  torch::manual_seed(3);
  const auto config = small_config("hstu");
  HstuBlock block(config);
  block.to(torch::kFloat64);
  const auto b = small_batch();
  const int H = 2, d = 4, L = 5, N = config.max_len;
  auto q = torch::randn({2, H, L, d}, torch::kFloat64), k = torch::randn({2, H, L, d}, torch::kFloat64);
  const auto plan = causal_plan(b.valid, N, 16, b.times, b.query_times);
  auto scores = torch::matmul(q, k.transpose(-1, -2)).unsqueeze(2);  // [B, H, 1, L, L]
  auto batched = block.attention_weights(scores, plan.groups[0]).squeeze(2);
  for (int r = 0; r < 2; ++r) {
    const auto length = b.lengths[r].item<std::int64_t>();
    for (int h = 0; h < H; ++h) {
      for (int i = 0; i < L; ++i) {
        for (int j = 0; j < L; ++j) {
          double expected = 0;
          if (j <= i && j < length) {
            const double dot = (q[r][h][i] * k[r][h][j]).sum().item<double>();
            const double rab = block.position_weights[N - 1 + j - i].item<double>() +
                               block
                                   .time_weights[static_cast<std::int64_t>(bucket(
                                       b.query_times[r][i].item<std::int64_t>() - b.times[r][j].item<std::int64_t>()))]
                                   .item<double>();
            const double z = dot + rab;
            expected = z / (1 + std::exp(-z)) / N;  // silu(z) / N_max
          }
          EXPECT_NEAR(batched[r][h][i][j].item<double>(), expected, 1e-12) << r << h << i << j;
        }
      }
    }
  }
}

// model.attention_divisor (the HSTU reference divides by its padded length,
// 211 on ML-1M): the weights are silu(z) / divisor, the same parameters'
// weights at N_max times N_max / divisor; divisor = max_len is the default.
TEST(Hstu, AttentionDivisorReplacesMaxLenAsTheNormaliser) {
  const auto b = small_batch();
  const auto plan = causal_plan(b.valid, 7, 16, b.times, b.query_times);
  auto config = small_config("hstu");
  torch::manual_seed(3);
  HstuBlock by_max_len(config);
  config.attention_divisor = 211;
  torch::manual_seed(3);
  HstuBlock by_divisor(config);
  config.attention_divisor = 7;  // = max_len
  torch::manual_seed(3);
  HstuBlock explicit_max_len(config);
  by_max_len.to(torch::kFloat64);
  by_divisor.to(torch::kFloat64);
  explicit_max_len.to(torch::kFloat64);
  auto q = torch::randn({2, 2, 5, 4}, torch::kFloat64), k = torch::randn({2, 2, 5, 4}, torch::kFloat64);
  auto scores = torch::matmul(q, k.transpose(-1, -2)).unsqueeze(2);
  const auto base = by_max_len.attention_weights(scores, plan.groups[0]);
  EXPECT_TRUE(torch::allclose(by_divisor.attention_weights(scores, plan.groups[0]), base * (7.0 / 211), 1e-14, 0));
  EXPECT_TRUE(torch::equal(explicit_max_len.attention_weights(scores, plan.groups[0]), base));
  auto x = torch::randn({2, 5, 8}, torch::kFloat64);
  EXPECT_FALSE(torch::allclose(by_divisor.forward(x, plan), by_max_len.forward(x, plan)));
}

TEST(Hstu, Float64GradientCheckOfOneBlock) {
  torch::manual_seed(5);
  const auto config = small_config("hstu");
  HstuBlock block(config);
  block.to(torch::kFloat64);
  const auto b = small_batch();
  auto x = torch::randn({2, 5, 8}, torch::kFloat64).requires_grad_(true);
  auto probe = torch::randn({2, 5, 8}, torch::kFloat64);
  const auto plan = causal_plan(b.valid, config.max_len, 16, b.times, b.query_times);
  const auto f = [&] { return (block.forward(x, plan) * probe).sum(); };
  auto loss = f();
  loss.backward();
  for (auto* t : {&x, &block.uvqk, &block.position_weights, &block.time_weights, &block.output->weight}) {
    auto analytic = t->grad().clone();
    auto numeric = numeric_gradient(f, t->detach());
    EXPECT_TRUE(torch::allclose(analytic, numeric, 1e-5, 1e-7))
        << "max difference " << (analytic - numeric).abs().max().item<double>();
  }
}

TEST(Hstu, PaddingDoesNotChangeValidPositions) {
  torch::manual_seed(9);
  auto config = small_config("hstu");
  SequentialRecommender model(config);
  model.eval();
  model.to(torch::kFloat64);
  auto b = small_batch();
  auto emb = torch::randn({2, 5, 8}, torch::kFloat64);
  auto full = model.forward(emb, b);
  // Row 1 alone, without its two padding columns.
  SequenceBatch short_batch;
  short_batch.items = b.items.slice(0, 1, 2).slice(1, 0, 3);
  short_batch.times = b.times.slice(0, 1, 2).slice(1, 0, 3);
  short_batch.query_times = b.query_times.slice(0, 1, 2).slice(1, 0, 3);
  short_batch.lengths = b.lengths.slice(0, 1, 2);
  short_batch.valid = b.valid.slice(0, 1, 2).slice(1, 0, 3);
  auto alone = model.forward(emb.slice(0, 1, 2).slice(1, 0, 3), short_batch);
  EXPECT_TRUE(torch::allclose(full.slice(0, 1, 2).slice(1, 0, 3), alone, 1e-10, 1e-12));
}

TEST(Flops, HstuAndSasrecMatchAHandCount) {
  auto hstu = small_config("hstu");  // D 8, 2 blocks, 2 heads of 4
  // Per block: uvqk 2*8*(4*2*4) = 512; q k^T 2*5*2*4 = 80; A v 80; output 2*8*8 = 128 -> 800; 2 blocks.
  EXPECT_DOUBLE_EQ(Hstu(hstu).flops_per_token(5), 2 * 800.0);
  SequentialRecommender model(hstu);
  // Plus scoring the positive and 5 negatives: 2 * 8 * 6 = 96.
  EXPECT_DOUBLE_EQ(model.forward_flops_per_token(5), 1600.0 + 96.0);
  EXPECT_DOUBLE_EQ(model.training_flops_per_token(5), 3 * (1600.0 + 96.0));
  auto sasrec = small_config("sasrec");
  // Per block: qkv 2*8*24 = 384; scores + values 2*5*2*4*2 = 160; out 128; FFN (F = 8) 2*8*8*2 = 256 -> 928.
  EXPECT_DOUBLE_EQ(Sasrec(sasrec).flops_per_token(5), 2 * 928.0);
}

TEST(Sasrec, CausalOutputsIgnoreTheFuture) {
  torch::manual_seed(2);
  auto config = small_config("sasrec");
  SequentialRecommender model(config);
  model.eval();
  auto b = small_batch();
  auto emb = torch::randn({2, 5, 8});
  auto before = model.forward(emb, b);
  auto changed = emb.clone();
  changed[0][4] += 1.0;  // only the last position of row 0 changes
  auto after = model.forward(changed, b);
  EXPECT_TRUE(torch::allclose(before[0].slice(0, 0, 4), after[0].slice(0, 0, 4), 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(before[0][4], after[0][4]));
}

}  // namespace longrec::model
