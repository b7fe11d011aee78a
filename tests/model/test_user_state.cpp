#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fmt/format.h>

#include <random>

#include "longrec/core/error.h"
#include "longrec/model/user_state.h"

namespace longrec::model {

namespace {

constexpr std::int64_t kItems = 40;

ModelConfig state_config(const std::string& backbone, int S, int K, int R, int max_groups,
                         const std::string& groups = "") {
  ModelConfig c;
  c.backbone = backbone;
  c.dim = 8;
  c.blocks = 2;
  c.heads = 2;
  c.max_len = 96;
  c.dropout = 0.0;
  c.time_buckets = 16;
  c.personalization.segment_len = S;
  c.personalization.tokens_per_group = K;
  c.personalization.recent_window = R;
  c.personalization.max_groups = max_groups;
  c.personalization.groups = groups;
  if (backbone == "hllm") c.hllm.kv_heads = 1;  // grouped-query attention too
  return c;
}

struct History {
  std::vector<std::int64_t> items, times;
};

History random_history(std::int64_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  History h;
  std::int64_t t = 1'000'000;
  for (std::int64_t i = 0; i < n; ++i) {
    h.items.push_back(1 + static_cast<std::int64_t>(rng() % kItems));
    h.times.push_back(t += static_cast<std::int64_t>(rng() % 100'000));
  }
  return h;
}

// The full forward (dense masked path) over the whole history: the user vector
// at the newest event, predicting an event at request_time.
torch::Tensor full_forward(SequentialRecommender& model, const torch::Tensor& table, const History& h,
                           std::int64_t request_time) {
  torch::NoGradGuard no_grad;
  const auto n = static_cast<std::int64_t>(h.items.size());
  SequenceBatch b;
  b.items = torch::tensor(h.items, torch::kInt64).view({1, n});
  b.times = torch::tensor(h.times, torch::kInt64).view({1, n});
  std::vector<std::int64_t> query(h.times.begin() + 1, h.times.end());
  query.push_back(request_time);
  b.query_times = torch::tensor(query, torch::kInt64).view({1, n});
  b.lengths = torch::tensor({n}, torch::kInt64);
  b.valid = torch::ones({1, n}, torch::kBool);
  auto rows = table.index_select(0, b.items.view({-1})).view({1, n, -1});
  return model.forward(rows, b, false)[0][n - 1];
}

struct Fixture {
  explicit Fixture(const ModelConfig& config, std::uint64_t seed = 1) : model((torch::manual_seed(seed), config)) {
    model.to(torch::kFloat64);
    table = torch::randn({kItems + 1, config.dim}, torch::kFloat64);
    table[0].zero_();
    encoder = std::make_unique<UserStateEncoder>(model, table);
  }
  SequentialRecommender model;
  torch::Tensor table;
  std::unique_ptr<UserStateEncoder> encoder;
};

}  // namespace

TEST(UserState, ScoresEqualTheFullMaskedForwardInFloat64) {
  const std::vector<ModelConfig> configs{
      state_config("hstu", 4, 2, 3, 8),
      state_config("sasrec", 4, 2, 3, 8),
      state_config("hstu", 3, 1, 0, 12),
      state_config("hstu", 5, 3, 6, 4),
      state_config("sasrec", 0, 1, 2, 4, "2:1,5:3,9:2"),
      state_config("hllm", 4, 2, 3, 8),
      state_config("hllm", 3, 1, 0, 3),  // few groups: the oldest are dropped, positions slide
      state_config("hllm", 0, 1, 2, 4, "2:1,5:3,9:2"),
  };
  for (const auto& config : configs) {
    Fixture f(config);
    const auto& p = config.personalization;
    const auto longest = longest_history(config.max_len, p);
    for (std::int64_t n = 1; n <= longest; n += 1 + n / 6) {
      SCOPED_TRACE(fmt::format("{} S={} K={} R={} groups='{}' n={}", config.backbone, p.segment_len, p.tokens_per_group,
                               p.recent_window, p.groups, n));
      const auto h = random_history(n, static_cast<std::uint64_t>(n));
      const auto state = f.encoder->compress(h.items, h.times);
      const auto request = h.times.back() + 12'345;
      const auto from_state = f.encoder->score(state, request);
      const auto full = full_forward(f.model, f.table, h, request);
      EXPECT_TRUE(torch::allclose(from_state, full / full.norm(), 1e-9, 1e-9))
          << (from_state - full / full.norm()).abs().max().item<double>();
      // Raw events never exceed a segment beyond the recent window.
      EXPECT_LE(static_cast<std::int64_t>(state.raw_items.size()), p.recent_window + 9 + 1);
    }
  }
}

TEST(UserState, WithoutTokensTheStateIsTheNewestMaxLenEventsRecomputed) {
  for (const std::string backbone : {"hstu", "sasrec", "hllm"}) {
    auto config = state_config(backbone, 0, 1, 0, 8);
    config.max_len = 12;
    Fixture f(config);
    const auto h = random_history(30, 3);
    UserState state;
    for (std::size_t i = 0; i < h.items.size(); ++i) {
      f.encoder->append(state, {h.items[i]}, {h.times[i]});
      const auto n = static_cast<std::int64_t>(i + 1);
      const auto first = static_cast<std::ptrdiff_t>(std::max<std::int64_t>(0, n - 12));
      const History newest{{h.items.begin() + first, h.items.begin() + n},
                           {h.times.begin() + first, h.times.begin() + n}};
      ASSERT_EQ(state.raw_items, newest.items);
      EXPECT_EQ(state.events_seen, n);
      EXPECT_EQ(state.dropped_events, first);
      const auto full = full_forward(f.model, f.table, newest, h.times[i] + 7);
      EXPECT_TRUE(torch::allclose(f.encoder->score(state, h.times[i] + 7), full / full.norm(), 1e-12, 1e-12));
    }
    EXPECT_EQ(state.cached_tokens(), 0);
    const auto bytes = f.encoder->serialize(state);
    EXPECT_EQ(f.encoder->serialize(f.encoder->deserialize(bytes)), bytes);
  }
}

TEST(UserState, AppendingOneEventAtATimeEqualsCompressingTheHistory) {
  for (const std::string backbone : {"hstu", "sasrec", "hllm"}) {
    Fixture f(state_config(backbone, 4, 2, 3, 8));
    const auto h = random_history(30, 5);
    UserState incremental;
    for (std::size_t i = 0; i < h.items.size(); ++i) {
      f.encoder->append(incremental, {h.items[i]}, {h.times[i]});
      const auto whole = f.encoder->compress(std::vector<std::int64_t>(h.items.begin(), h.items.begin() + i + 1),
                                             std::vector<std::int64_t>(h.times.begin(), h.times.begin() + i + 1));
      ASSERT_EQ(f.encoder->serialize(incremental), f.encoder->serialize(whole)) << backbone << " after " << i + 1;
      EXPECT_TRUE(torch::equal(f.encoder->score(incremental, h.times[i] + 1), f.encoder->score(whole, h.times[i] + 1)));
    }
    EXPECT_EQ(incremental.groups_done, 6);  // 30 - 3 = 27 old events: 6 complete groups of 4
    EXPECT_EQ(incremental.cached_tokens(), 12);
  }
}

TEST(UserState, SerialisesAndLoadsBackBitIdentically) {
  Fixture f(state_config("hstu", 4, 2, 3, 8));
  const auto h = random_history(25, 8);
  const auto state = f.encoder->compress(h.items, h.times);
  const auto bytes = f.encoder->serialize(state);
  const auto loaded = f.encoder->deserialize(bytes);
  EXPECT_EQ(f.encoder->serialize(loaded), bytes);
  ASSERT_EQ(loaded.memory.keys.size(), 2u);
  for (std::size_t l = 0; l < 2; ++l) {
    EXPECT_TRUE(torch::equal(loaded.memory.keys[l], state.memory.keys[l]));
    EXPECT_TRUE(torch::equal(loaded.memory.values[l], state.memory.values[l]));
  }
  EXPECT_TRUE(torch::equal(f.encoder->score(loaded, 5), f.encoder->score(state, 5)));
}

TEST(UserState, AStateOfAnotherModelOrDamagedBytesIsRefused) {
  Fixture f(state_config("hstu", 4, 2, 3, 8));
  const auto h = random_history(20, 3);
  const auto bytes = f.encoder->serialize(f.encoder->compress(h.items, h.times));
  const auto refused = [&](const ModelConfig& other) {
    Fixture g(other);
    EXPECT_THROW(g.encoder->deserialize(bytes), DataError) << other.describe();
  };
  auto more_tokens = state_config("hstu", 4, 3, 3, 8);
  refused(more_tokens);
  auto wider = state_config("hstu", 4, 2, 3, 8);
  wider.dim = 12;
  refused(wider);
  auto deeper = state_config("hstu", 4, 2, 3, 8);
  deeper.blocks = 3;
  refused(deeper);
  refused(state_config("sasrec", 4, 2, 3, 8));
  auto damaged = bytes;
  damaged[damaged.size() / 2] ^= 0x5a;
  EXPECT_THROW(f.encoder->deserialize(damaged), DataError);
  EXPECT_THROW(f.encoder->deserialize(bytes.substr(0, bytes.size() - 9)), DataError);
  EXPECT_THROW(f.encoder->deserialize("not a state"), DataError);
}

TEST(UserState, MemoryStaysBoundedAsEventsArrive) {
  Fixture f(state_config("hstu", 4, 2, 3, 3));
  const auto h = random_history(400, 4);
  UserState state;
  std::int64_t largest = 0;
  for (std::size_t i = 0; i < h.items.size(); ++i) {
    f.encoder->append(state, {h.items[i]}, {h.times[i]});
    largest = std::max(largest, state.memory_bytes());
    ASSERT_LE(state.cached_tokens(), 3 * 2);
    ASSERT_LE(static_cast<std::int64_t>(state.raw_items.size()), 3 + 4);
    ASSERT_LT(state.next_position + 8, f.model.config().max_len);
  }
  // 3 groups x 2 tokens x 2 layers x (keys + values) x 2 heads x 4 dims x 8 bytes,
  // plus at most 7 raw events and 6 token positions/times.
  EXPECT_LE(largest, 3 * 2 * 2 * 2 * 2 * 4 * 8 + 7 * 16 + 6 * 16);
  EXPECT_EQ(state.events_seen, 400);
  EXPECT_GT(state.dropped_groups, 90);
  EXPECT_EQ(f.encoder->score(state, h.times.back() + 1).size(0), 8);
}

TEST(UserState, SlidesWhereTheModelsPositionsEndBeforeTheGroupCap) {
  // 64 groups of 4 + 2 tokens would need 384 positions; the model has 96.
  Fixture f(state_config("sasrec", 4, 2, 3, 64));
  const auto longest = longest_history(96, f.model.config().personalization);
  const auto h = random_history(300, 9);
  UserState state;
  for (std::size_t i = 0; i < h.items.size(); ++i) {
    f.encoder->append(state, {h.items[i]}, {h.times[i]});
    ASSERT_LE(state.next_position + static_cast<std::int64_t>(state.raw_items.size()), 96) << i;
    if (static_cast<std::int64_t>(i) < longest) ASSERT_EQ(state.dropped_groups, 0) << i;
    ASSERT_TRUE(torch::isfinite(f.encoder->score(state, h.times[i] + 1)).all().item<bool>()) << i;
  }
  EXPECT_GT(state.dropped_groups, 30);
  // The same 300 events in one batch, and in batches of 37: the same state.
  const auto bulk = f.encoder->compress(h.items, h.times);
  EXPECT_EQ(f.encoder->serialize(bulk), f.encoder->serialize(state));
  UserState batches;
  for (std::size_t i = 0; i < h.items.size(); i += 37) {
    const auto end = std::min(h.items.size(), i + 37);
    f.encoder->append(batches, {h.items.begin() + i, h.items.begin() + end},
                      {h.times.begin() + i, h.times.begin() + end});
  }
  EXPECT_EQ(f.encoder->serialize(batches), f.encoder->serialize(state));
}

TEST(UserState, AnAppendRefusedHalfwayLeavesTheStateAsItWas) {
  // Explicit groups cannot slide: events past the last group plus the recent window are refused.
  Fixture f(state_config("sasrec", 0, 1, 2, 4, "2:1,5:3,9:2"));
  const auto h = random_history(20, 12);
  auto state = f.encoder->compress({h.items.begin(), h.items.begin() + 6}, {h.times.begin(), h.times.begin() + 6});
  const auto before = f.encoder->serialize(state);
  EXPECT_THROW(f.encoder->append(state, {h.items.begin() + 6, h.items.end()}, {h.times.begin() + 6, h.times.end()}),
               DataError);
  EXPECT_EQ(f.encoder->serialize(state), before);
}

TEST(UserState, UnknownItemsAreRefusedAndLeaveTheStateAlone) {
  Fixture f(state_config("hstu", 4, 2, 3, 8));
  const auto h = random_history(10, 6);
  auto state = f.encoder->compress(h.items, h.times);
  const auto before = f.encoder->serialize(state);
  EXPECT_THROW(f.encoder->append(state, {3, kItems + 1}, {1, 2}), DataError);
  EXPECT_THROW(f.encoder->append(state, {0}, {1}), DataError);
  EXPECT_THROW(f.encoder->append(state, {3, 4}, {1}), DataError);
  EXPECT_EQ(f.encoder->serialize(state), before);
  EXPECT_THROW(f.encoder->score(UserState{}, 0), DataError);
}

}  // namespace longrec::model

namespace longrec::model {

// The time order is the encoder's to check (every caller, not only serving,
// builds states): a refused append names the times and changes nothing.
TEST(UserState, EventsOutOfTimeOrderAreRefusedAndLeaveTheStateAlone) {
  Fixture f(state_config("hstu", 4, 2, 3, 8));
  const auto h = random_history(40, 6);  // past several segments: raw events follow compressed groups
  auto state = f.encoder->compress(h.items, h.times);
  ASSERT_GT(state.groups_done, 0);
  const auto before = f.encoder->serialize(state);
  const auto newest = h.times.back();
  const auto message = [&](const std::vector<std::int64_t>& times) {
    try {
      f.encoder->append(state, std::vector<std::int64_t>(times.size(), 3), times);
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_NE(message({newest - 1})
                .find(fmt::format("event time {} is before the state's newest event ({})", newest - 1, newest)),
            std::string::npos);
  EXPECT_NE(message({newest + 5, newest + 2})
                .find(fmt::format("event times out of order: {} after {}", newest + 2, newest + 5)),
            std::string::npos);
  EXPECT_EQ(f.encoder->serialize(state), before);
  f.encoder->append(state, {3, 4}, {newest, newest + 1});  // equal times are in order
  EXPECT_EQ(state.events_seen, 42);
}

}  // namespace longrec::model
