// Run under `mpirun -np 2` (CTest does): every rank runs every test; each
// checks what its rank must see after the collective.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "longrec/core/error.h"
#include "longrec/distributed/communicator.h"

namespace longrec::distributed {

Communicator& test_communicator() {
  static auto c = make_mpi_communicator();
  return *c;
}

namespace {
Communicator& comm() { return test_communicator(); }
}  // namespace

TEST(MpiCommunicator, AllReduceSumsEveryRank) {
  const auto W = comm().world(), r = comm().rank();
  for (auto dtype : {torch::kFloat32, torch::kFloat64, torch::kInt64}) {
    auto t = torch::arange(10, torch::TensorOptions().dtype(dtype)) * (r + 1);
    comm().all_reduce_sum(t);
    EXPECT_TRUE(torch::equal(t, torch::arange(10, torch::TensorOptions().dtype(dtype)) * (W * (W + 1) / 2)));
  }
}

TEST(MpiCommunicator, AllGatherConcatenatesInRankOrder) {
  const auto W = comm().world(), r = comm().rank();
  auto gathered = comm().all_gather(torch::full({3, 2}, r, torch::kInt64));
  ASSERT_EQ(gathered.size(0), 3 * W);
  for (int k = 0; k < W; ++k) EXPECT_TRUE((gathered.slice(0, 3 * k, 3 * k + 3) == k).all().item<bool>());
}

TEST(MpiCommunicator, AllToAllVDeliversEachRowToItsDestination) {
  const auto W = comm().world(), r = comm().rank();
  // Rank r sends r + d + 1 rows to rank d, each row [r, d, i].
  std::vector<std::int64_t> send_counts;
  std::vector<torch::Tensor> rows;
  for (int d = 0; d < W; ++d) {
    send_counts.push_back(r + d + 1);
    for (int i = 0; i < r + d + 1; ++i) rows.push_back(torch::tensor({r, d, i}, torch::kInt64));
  }
  std::vector<std::int64_t> recv_counts;
  auto received = comm().all_to_all_v(torch::stack(rows), send_counts, recv_counts);
  ASSERT_EQ(static_cast<int>(recv_counts.size()), W);
  std::int64_t at = 0;
  for (int s = 0; s < W; ++s) {
    EXPECT_EQ(recv_counts[s], s + r + 1);
    for (int i = 0; i < s + r + 1; ++i, ++at) {
      EXPECT_TRUE(torch::equal(received[at], torch::tensor({s, r, i}, torch::kInt64))) << s << " " << i;
    }
  }
  EXPECT_EQ(at, received.size(0));
}

TEST(MpiCommunicator, AStartedAllToAllVDeliversTheSameRowsAcrossOtherCollectives) {
  const auto W = comm().world(), r = comm().rank();
  std::vector<std::int64_t> send_counts;
  std::vector<torch::Tensor> rows;
  for (int d = 0; d < W; ++d) {
    send_counts.push_back(2 * r + d + 1);
    for (int i = 0; i < 2 * r + d + 1; ++i) rows.push_back(torch::tensor({r, d, i}, torch::kInt64));
  }
  const auto stacked = torch::stack(rows);
  std::vector<std::int64_t> expected_counts;
  const auto expected = comm().all_to_all_v(stacked, send_counts, expected_counts);
  auto pending = comm().start_all_to_all_v(stacked, send_counts);
  EXPECT_EQ(pending->recv_counts(), expected_counts);  // known when it starts
  // Blocking collectives may run while it travels (every rank in the same order).
  auto sum = torch::ones({3});
  comm().all_reduce_sum(sum);
  EXPECT_TRUE(torch::equal(sum, torch::full({3}, static_cast<float>(W))));
  EXPECT_TRUE(torch::equal(pending->wait(), expected));
  EXPECT_THROW(pending->wait(), DistError);
  // One never waited for completes in its destructor.
  comm().start_all_to_all_v(stacked, send_counts).reset();
  // A world of one: the default (completed at start).
  auto single = make_single_process_communicator();
  auto own = single->start_all_to_all_v(stacked, {stacked.size(0)});
  EXPECT_EQ(own->recv_counts(), std::vector<std::int64_t>{stacked.size(0)});
  EXPECT_TRUE(torch::equal(own->wait(), stacked));
}

TEST(MpiCommunicator, BroadcastCopiesTheRootsTensor) {
  const auto W = comm().world(), r = comm().rank();
  auto t = torch::full({4}, static_cast<double>(r), torch::kFloat64);
  comm().broadcast(t, W - 1);
  EXPECT_TRUE((t == W - 1).all().item<bool>());
  comm().barrier();
}

TEST(MpiCommunicator, RefusesWhatMpiCannotMove) {
  auto strided = torch::zeros({4, 4}).t();
  EXPECT_THROW(comm().all_reduce_sum(strided), DistError);
  auto half = torch::zeros({4}, torch::kBFloat16);
  EXPECT_THROW(comm().all_reduce_sum(half), DistError);
  std::vector<std::int64_t> counts(static_cast<std::size_t>(comm().world()), 0), recv;
  counts[0] = 5;  // more rows than the tensor has
  EXPECT_THROW(comm().all_to_all_v(torch::zeros({2, 3}), counts, recv), DistError);
}

// The NCCL backend, where this build has it and every rank has its own GPU
// (NCCL refuses two ranks on one device).
TEST(NcclCommunicator, CollectivesMatchTheMpiBackend) {
  if (!torch::cuda::is_available() || static_cast<int>(torch::cuda::device_count()) < comm().topology().local_world) {
    GTEST_SKIP() << "needs one GPU per local rank";
  }
  auto nccl = make_nccl_communicator(comm());
  const auto W = nccl->world(), r = nccl->rank();
  const auto device = torch::Device(torch::kCUDA, comm().topology().local_rank % torch::cuda::device_count());
  auto t = (torch::arange(1000, torch::kFloat32) * (r + 1)).to(device);
  nccl->all_reduce_sum(t);
  EXPECT_TRUE(torch::equal(t.cpu(), torch::arange(1000, torch::kFloat32) * (W * (W + 1) / 2)));
  auto gathered = nccl->all_gather(torch::full({2}, r, torch::kInt64).to(device)).cpu();
  for (int k = 0; k < W; ++k) EXPECT_TRUE((gathered.slice(0, 2 * k, 2 * k + 2) == k).all().item<bool>());
  std::vector<std::int64_t> send_counts, recv_counts;
  std::vector<torch::Tensor> rows;
  for (int d = 0; d < W; ++d) {
    send_counts.push_back(r + d + 1);
    for (int i = 0; i < r + d + 1; ++i) rows.push_back(torch::tensor({r, d, i}, torch::kInt64));
  }
  auto received = nccl->all_to_all_v(torch::stack(rows).to(device), send_counts, recv_counts).cpu();
  std::int64_t at = 0;
  for (int s = 0; s < W; ++s) {
    ASSERT_EQ(recv_counts[s], s + r + 1);
    for (int i = 0; i < s + r + 1; ++i, ++at) {
      EXPECT_TRUE(torch::equal(received[at], torch::tensor({s, r, i}, torch::kInt64)));
    }
  }
  auto b = torch::full({3}, static_cast<float>(r), torch::kFloat32).to(device);
  nccl->broadcast(b, 0);
  EXPECT_TRUE((b.cpu() == 0).all().item<bool>());
  nccl->barrier();
}

}  // namespace longrec::distributed

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  longrec::distributed::MpiRuntime::start();
  return RUN_ALL_TESTS();
}
