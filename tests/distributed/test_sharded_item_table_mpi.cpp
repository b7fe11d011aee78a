// Under `mpirun -np 2`: the sharded table against the whole table in one
// process (LocalItemTable, same seed), which every rank also builds.
#include <gtest/gtest.h>

#include "longrec/core/error.h"
#include <torch/torch.h>

#include "longrec/distributed/sharded_item_table.h"

namespace longrec::distributed {

Communicator& test_communicator();

namespace {

constexpr std::int64_t kItems = 1000, kDim = 6;

model::SparseOptimizerConfig adam() {
  model::SparseOptimizerConfig c;
  c.kind = "adam";
  c.lr = 1e-2;
  return c;
}

// Ids a rank reads in step `step` (overlapping across ranks, never 0).
torch::Tensor step_ids(int rank, int step) {
  auto ids = (torch::arange(0, 40, torch::kInt64) * (7 + rank) + 13 * step + 3 * rank) % kItems + 1;
  return std::get<0>(at::_unique2(ids, true, false, false));
}

// A gradient that depends on (rank, id, step) only.
torch::Tensor step_grad(int rank, const torch::Tensor& ids, int step) {
  return torch::sin(ids.to(torch::kFloat32).unsqueeze(1) * (rank + 1) + torch::arange(kDim) + step);
}

}  // namespace

TEST(ShardedItemTable, HoldsOnlyItsRowsWithTheWholeTablesValues) {
  auto& comm = test_communicator();
  ShardedItemTable sharded(kItems, kDim, adam(), 5, comm);
  model::LocalItemTable whole(kItems, kDim, adam(), 5);
  const auto ids = sharded.global_ids();
  EXPECT_EQ(sharded.local_rows(), (kItems - comm.rank()) / comm.world() + 1);
  EXPECT_TRUE((ids.remainder(comm.world()) == comm.rank()).all().item<bool>());
  EXPECT_TRUE(torch::equal(sharded.state().at("weight"), whole.weight().index_select(0, ids)));
}

TEST(ShardedItemTable, MoreRanksThanRowsAreRefusedOnEveryRank) {
  auto& comm = test_communicator();
  ASSERT_EQ(comm.world(), 2);
  try {
    ShardedItemTable sharded(0, kDim, adam(), 5, comm);  // one row (padding) for two ranks
    FAIL() << "a rank without rows was built";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("2 ranks share an item table of 0 items"), std::string::npos) << e.what();
  }
  ShardedItemTable smallest(1, kDim, adam(), 5, comm);  // rows 0 and 1: one each
  EXPECT_EQ(smallest.local_rows(), 1);
}

TEST(ShardedItemTable, StepsEqualTheWholeTableWithSummedGradients) {
  auto& comm = test_communicator();
  const int W = comm.world(), r = comm.rank();
  ShardedItemTable sharded(kItems, kDim, adam(), 5, comm);
  model::LocalItemTable whole(kItems, kDim, adam(), 5);
  for (int step = 0; step < 4; ++step) {
    // The sharded step: each rank its own ids and gradients (rank 1 none in step 2).
    auto ids = (r == 1 && step == 2) ? torch::zeros({0}, torch::kInt64) : step_ids(r, step);
    auto rows = sharded.lookup(ids);
    ASSERT_TRUE(torch::equal(rows.rows.detach(), whole.weight().index_select(0, ids))) << "step " << step;
    rows.rows.mutable_grad() = step_grad(r, ids, step);
    sharded.apply_gradients(rows, 1e-2);
    // The same step on the whole table: every rank's gradient, summed per id.
    std::vector<torch::Tensor> all_ids, all_grads;
    for (int k = 0; k < W; ++k) {
      if (k == 1 && step == 2) continue;
      all_ids.push_back(step_ids(k, step));
      all_grads.push_back(step_grad(k, all_ids.back(), step));
    }
    const auto cat = torch::cat(all_ids);
    const auto [unique, inverse, counts] = at::_unique2(cat, true, true, false);
    auto summed = torch::zeros({unique.size(0), kDim});
    summed.index_add_(0, inverse, torch::cat(all_grads));
    whole.apply_row_gradients(unique, summed, 1e-2);
  }
  const auto mine = sharded.global_ids();
  EXPECT_TRUE(torch::allclose(sharded.state().at("weight"), whole.weight().index_select(0, mine), 1e-6, 1e-7));
  EXPECT_TRUE(torch::allclose(sharded.state().at("adam.first_moment"),
                              whole.state().at("adam.first_moment").index_select(0, mine), 1e-6, 1e-7));
  // Any rows, fetched from their owners, normalised.
  const auto probe = torch::tensor({1, 2, 3, 999, 1000}, torch::kInt64);
  EXPECT_TRUE(torch::allclose(sharded.normalized_vectors(probe), whole.normalized_vectors(probe), 1e-6, 1e-7));
}

// The overlap of training: the ids of step t + 1 start travelling before step
// t's update (start_route), their rows are read after it (finish_route,
// lookup): the same rows and the same table as plain lookups, bit for bit.
TEST(ShardedItemTable, RoutesStartedAStepAheadGiveTheSameSteps) {
  auto& comm = test_communicator();
  const int r = comm.rank();
  ShardedItemTable plain(kItems, kDim, adam(), 5, comm), ahead(kItems, kDim, adam(), 5, comm);
  const auto ids_of = [&](int step) {
    return (r == 1 && step == 2) ? torch::zeros({0}, torch::kInt64) : step_ids(r, step);
  };
  auto pending = std::make_unique<PendingRoute>(ahead.start_route(ids_of(0)));
  for (int step = 0; step < 4; ++step) {
    const auto ids = ids_of(step);
    auto expected = plain.lookup(ids);
    auto rows = ahead.lookup(ahead.finish_route(std::move(*pending)));
    ASSERT_TRUE(torch::equal(rows.ids, ids));
    ASSERT_TRUE(torch::equal(rows.rows.detach(), expected.rows.detach())) << "step " << step;
    pending = std::make_unique<PendingRoute>(ahead.start_route(ids_of(step + 1)));  // before this step's update
    expected.rows.mutable_grad() = step_grad(r, ids, step);
    rows.rows.mutable_grad() = step_grad(r, ids, step);
    plain.apply_gradients(expected, 1e-2);
    ahead.apply_gradients(rows, 1e-2);
  }
  ahead.finish_route(std::move(*pending));  // started for a step that does not come
  EXPECT_TRUE(torch::equal(ahead.state().at("weight"), plain.state().at("weight")));
  EXPECT_TRUE(torch::equal(ahead.state().at("adam.second_moment"), plain.state().at("adam.second_moment")));
}

}  // namespace longrec::distributed
