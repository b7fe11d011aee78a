// The serving library: a bundle's recommendations come from the same user
// vector the trained model computes, ranked over all items with the history
// excluded; bad requests and bad bundles are refused; concurrent calls agree.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <torch/torch.h>

#include <fstream>
#include <set>
#include <thread>

#include "longrec/ckpt/checkpoint.h"
#include "longrec/core/error.h"
#include "longrec/data/history_store.h"
#include "longrec/data/loader.h"
#include "longrec/model/sequence_batch.h"
#include "longrec/ckpt/bundle.h"
#include "longrec/serve/recommender.h"
#include "support/trained_fixture.h"

namespace longrec::serve {

using testing::trained;

namespace fs = std::filesystem;

namespace {

fs::path bundle(const std::string& name, bool items_only = false) {
  auto& t = trained();
  const auto path = t.dir / name;
  if (!fs::exists(path)) {
    ckpt::ExportOptions o;
    o.checkpoint = t.run.string();
    o.out = path.string();
    o.items_only = items_only;
    ckpt::export_bundle(o);
  }
  return path;
}

}  // namespace

TEST(Recommender, RanksEveryItemByTheTrainedModelsUserVectorWithTheHistoryExcluded) {
  auto& t = trained();
  const auto recommender = Recommender::load(bundle("full.h5"), 1);
  EXPECT_EQ(recommender->num_items(), 120);
  const auto raw = data::HistoryStoreReader(t.dataset).item_raw_ids();
  // A history of 30 events (beyond the recent window: tokens are used).
  std::vector<std::int64_t> history, internal;
  for (int e = 0; e < 30; ++e) {
    internal.push_back((7 * e) % 120 + 1);
    history.push_back(raw[static_cast<std::size_t>(internal.back() - 1)]);
  }

  // The reference: the checkpoint's model on the same events (ordinal times).
  const auto checkpoint = ckpt::resolve_checkpoint(t.run.string(), "auto");
  const auto manifest = ckpt::read_manifest(checkpoint);
  model::SequentialRecommender model(manifest.model);
  model::LocalItemTable items(manifest.num_items, manifest.model.dim, {}, 0);
  ckpt::load_checkpoint(checkpoint, manifest, model, nullptr, items);
  model.eval();
  data::Batch batch;
  batch.training = false;
  batch.rows = 1;
  batch.width = 30;
  for (int e = 0; e < 30; ++e) {
    batch.items.push_back(static_cast<std::int32_t>(internal[e]));
    batch.times.push_back(e);
  }
  batch.lengths = {30};
  batch.targets = {0};
  batch.target_times = {30};
  torch::NoGradGuard no_grad;
  auto expected = model::last_position_vectors(model, items, model::to_sequence_batch(batch))[0];
  expected = expected / expected.norm();
  const auto got = torch::tensor(recommender->user_vector(history));
  EXPECT_TRUE(torch::allclose(got, expected, 1e-5, 1e-6)) << (got - expected).abs().max().item<double>();

  // Top-10 by brute force over all items, the history excluded.
  auto table = items.normalized_rows(1, 121);
  auto scores = torch::mv(table, expected);
  for (auto id : internal) scores[id - 1] = -1e9;
  const auto order = std::get<1>(scores.topk(10));
  const auto recs = recommender->recommend(history, 10);
  ASSERT_EQ(recs.size(), 10u);
  for (int j = 0; j < 10; ++j) {
    EXPECT_EQ(recs[j].item, raw[static_cast<std::size_t>(order[j].item<std::int64_t>())]) << j;
    EXPECT_NEAR(recs[j].score, scores[order[j]].item<double>(), 1e-5);
  }
  // With the history allowed back in, a seen item may lead; never fewer than k.
  EXPECT_EQ(recommender->recommend(history, 120, false).size(), 120u);
  EXPECT_EQ(recommender->recommend(history, 120, true).size(), 120u - 30u);

  // Batched and concurrent calls give the same answers.
  const auto batched = recommender->recommend_batch({history, {history[0]}, history}, 10);
  EXPECT_EQ(batched[0].size(), 10u);
  for (int j = 0; j < 10; ++j) EXPECT_EQ(batched[0][j].item, recs[j].item);
  std::vector<std::thread> threads;
  std::vector<int> agree(4, 0);
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int rep = 0; rep < 5; ++rep) {
        const auto again = recommender->recommend(history, 10);
        agree[w] += again.size() == 10 && again[0].item == recs[0].item && again[9].item == recs[9].item;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int w = 0; w < 4; ++w) EXPECT_EQ(agree[w], 5) << "thread " << w;
}

TEST(Recommender, CachedUserStateAnswersLikeTheWholeHistory) {
  auto& t = trained();
  const auto recommender = Recommender::load(bundle("full.h5"), 1);
  const auto raw = data::HistoryStoreReader(t.dataset).item_raw_ids();
  std::vector<std::int64_t> history;
  for (int e = 0; e < 40; ++e) history.push_back(raw[static_cast<std::size_t>((11 * e + 3) % 120)]);

  // Built from 5 events, then one event at a time: at every length the state's
  // user vector is the whole history's (tokens compressed once 32 events are known).
  auto state = recommender->create_state({history.begin(), history.begin() + 5});
  for (std::size_t n = 5; n <= history.size(); ++n) {
    if (n > 5) recommender->append(state, {history[n - 1]});
    const std::vector<std::int64_t> prefix(history.begin(), history.begin() + static_cast<std::ptrdiff_t>(n));
    const auto from_state = torch::tensor(recommender->user_vector(state));
    const auto whole = torch::tensor(recommender->user_vector(prefix));
    ASSERT_TRUE(torch::allclose(from_state, whole, 1e-5, 1e-6)) << n << ": " << (from_state - whole).abs().max();
  }
  EXPECT_EQ(state.events(), 40);
  EXPECT_EQ(state.cached_tokens(), 2);  // one segment of 16 compressed into K = 2 tokens
  EXPECT_EQ(state.held_events(), 40 - 16);
  const auto recs = recommender->recommend(state, 10, false);
  const auto expected = recommender->recommend(history, 10, false);
  ASSERT_EQ(recs.size(), 10u);
  for (int j = 0; j < 10; ++j) EXPECT_EQ(recs[j].item, expected[j].item) << j;
  // exclude_seen drops every event the state still holds raw.
  const std::set<std::int64_t> held(history.end() - state.held_events(), history.end());
  for (const auto& r : recommender->recommend(state, 50)) EXPECT_EQ(held.count(r.item), 0u) << r.item;
  EXPECT_EQ(recommender->recommend_batch(std::vector<const UserState*>{&state, &state}, 10, false)[1][0].item,
            recs[0].item);

  // Event times as given (not ordinal): same answers as the history with those times.
  std::vector<std::int64_t> times;
  for (std::size_t e = 0; e < history.size(); ++e) times.push_back(1000 + 37 * static_cast<std::int64_t>(e));
  auto timed = recommender->create_state({history.begin(), history.begin() + 20}, {times.begin(), times.begin() + 20});
  recommender->append(timed, {history.begin() + 20, history.end()}, {times.begin() + 20, times.end()});
  const auto timed_vector = torch::tensor(recommender->user_vector(timed, 3000));
  const auto timed_whole = torch::tensor(recommender->user_vector(history, times, 3000));
  EXPECT_TRUE(torch::allclose(timed_vector, timed_whole, 1e-5, 1e-6));

  // Serialised and loaded back: the same bytes and the same answers.
  const auto bytes = recommender->serialize(state);
  const auto loaded = recommender->deserialize(bytes);
  EXPECT_EQ(recommender->serialize(loaded), bytes);
  EXPECT_EQ(recommender->user_vector(loaded), recommender->user_vector(state));
  EXPECT_LT(state.memory_bytes(), 40 * 16 * 8);

  // Refusals leave the state as it was.
  EXPECT_THROW(recommender->append(state, {raw[0], 999999}), DataError);
  EXPECT_THROW(recommender->append(state, {raw[0]}, {5}), DataError);                   // times on an ordinal state
  EXPECT_THROW(recommender->append(timed, {raw[0]}), DataError);                        // no time on a timed state
  EXPECT_THROW(recommender->append(timed, {raw[0]}, {10}), DataError);                  // earlier than the newest event
  EXPECT_THROW(recommender->append(timed, {raw[0], raw[1]}, {5000, 4999}), DataError);  // out of order
  EXPECT_THROW(recommender->append(state, {}), DataError);
  EXPECT_EQ(recommender->serialize(state), bytes);
  EXPECT_THROW(recommender->create_state({}), DataError);
  EXPECT_THROW(recommender->recommend(state, 0), ConfigError);
  EXPECT_THROW(recommender->recommend(UserState(), 5), DataError);
  auto damaged = bytes;
  damaged[damaged.size() / 2] ^= 0x40;
  EXPECT_THROW(recommender->deserialize(damaged), DataError);
  EXPECT_THROW(recommender->deserialize("X" + bytes.substr(1)), DataError);
  EXPECT_THROW(recommender->deserialize(""), DataError);
}

TEST(Recommender, RefusesBadRequestsAndBadBundles) {
  auto& t = trained();
  const auto recommender = Recommender::load(bundle("full.h5"), 1);
  const auto raw = data::HistoryStoreReader(t.dataset).item_raw_ids();
  const std::vector<std::int64_t> history{raw[0], raw[1]};
  try {
    recommender->recommend({raw[0], 999999}, 5);
    FAIL() << "an unknown item was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("item 999999 is not in the model's catalogue"), std::string::npos);
  }
  EXPECT_THROW(recommender->recommend(std::vector<std::int64_t>{}, 5), DataError);
  EXPECT_THROW(recommender->recommend(history, 0), ConfigError);
  EXPECT_THROW(recommender->recommend(history, 121), ConfigError);
  EXPECT_THROW(recommender->recommend(history, 5, true, {1}), DataError);  // one time for two events

  try {
    Recommender::load(bundle("items.h5", true));
    FAIL() << "an items-only bundle was loaded";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("items-only"), std::string::npos) << e.what();
  }
  // A damaged copy: one item id changed in place (valid HDF5, wrong content).
  const auto damaged = t.dir / "damaged.h5";
  fs::copy_file(bundle("full.h5"), damaged, fs::copy_options::overwrite_existing);
  {
    const hid_t file = H5Fopen(damaged.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    const hid_t ids = H5Dopen2(file, "/items/ids", H5P_DEFAULT);
    std::vector<std::int64_t> values(120);
    ASSERT_GE(H5Dread(ids, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
    values[0] += 1;
    ASSERT_GE(H5Dwrite(ids, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
    H5Dclose(ids);
    H5Fclose(file);
  }
  try {
    Recommender::load(damaged);
    FAIL() << "a damaged bundle was loaded";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("damaged.h5: checksum"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Recommender::load(t.dir / "missing.h5"), DataError);
}

}  // namespace longrec::serve
