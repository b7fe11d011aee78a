// Collective timeouts between 2 real MPI ranks (issue 14; CTest runs it under
// `mpirun -np 2`). Rank 0 waits in an all_reduce on communicator A that rank 1
// never joins; rank 1 waits in a barrier on communicator C that rank 0 never
// joins. Rank 0's deadline (2 s) passes first: it tells rank 1, which is
// waiting, so rank 1 answers and gives up too; each names its collective and
// where the other one is. Then each joins the collective the other left
// under way, so that both complete and the job ends cleanly.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "longrec/distributed/communicator.h"

namespace longrec::distributed {
namespace {

// EXPECT_PRED2(has, text, part): on failure both are printed.
bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(CollectiveTimeout, BothRanksNameTheirCollectiveAndEachOther) {
  auto a = make_mpi_communicator();
  auto c = make_mpi_communicator();
  auto b = make_mpi_communicator();  // stays healthy: the end
  ASSERT_EQ(a->world(), 2) << "run with mpirun -np 2";
  const int r = a->rank();
  a->set_collective_timeout(2.0);
  c->set_collective_timeout(60.0);
  auto ones = torch::ones({5});
  // Both ranks start the clock together: start-up skew on a loaded machine must not count.
  b->barrier();
  const auto start = std::chrono::steady_clock::now();
  if (r == 0) {
    CollectiveLabel label(*a, "the timeout test");
    try {
      a->all_reduce_sum(ones);
      FAIL() << "all_reduce_sum completed although rank 1 never joined";
    } catch (const CollectiveTimeout& e) {
      const std::string what = e.what();
      std::printf("rank %d: %s\n", r, what.c_str());
      EXPECT_PRED2(has, what, "collective #2 all_reduce_sum(the timeout test) did not complete within 2 s");
      EXPECT_PRED2(has, what, "rank 1 waits at #2 barrier(the other collective)");
      EXPECT_FALSE(has(what, "no word")) << what;
    }
    const double waited = seconds_since(start);
    EXPECT_GE(waited, 2.0);
    // Generous: the machine running the suite may be loaded; the messages above are the evidence.
    EXPECT_LT(waited, 30.0);
    // The communicator that gave up refuses further collectives instead of waiting again.
    try {
      a->barrier();
      FAIL() << "a communicator that gave up ran a barrier";
    } catch (const DistError& e) {
      EXPECT_PRED2(has, std::string(e.what()), "barrier: this communicator gave up on an earlier collective");
    }
    c->barrier();  // completes rank 1's barrier left under way
  } else {
    CollectiveLabel label(*c, "the other collective");
    try {
      c->barrier();
      FAIL() << "barrier completed although rank 0 never joined";
    } catch (const CollectiveTimeout& e) {
      const std::string what = e.what();
      std::printf("rank %d: %s\n", r, what.c_str());
      EXPECT_PRED2(has, what, "collective #2 barrier(the other collective) given up after");
      EXPECT_PRED2(has, what, "(timeout 60 s) because rank 0 gave up");
      EXPECT_PRED2(has, what, "rank 0 timed out at #2 all_reduce_sum(the timeout test)");
    }
    const double waited = seconds_since(start);
    // Told by rank 0 when its deadline passed, not before (the two clocks start a barrier's exit apart).
    EXPECT_GE(waited, 1.5);
    EXPECT_LT(waited, 30.0);  // long before its own 60 s deadline
    // Completes rank 0's all_reduce left under way: rank 0's ones were kept alive for it.
    a->all_reduce_sum(ones);
    EXPECT_TRUE(torch::equal(ones, torch::full({5}, 2.0f)));
  }
  // The third communicator is unaffected.
  auto t = torch::full({3}, static_cast<double>(r + 1), torch::kFloat64);
  b->all_reduce_sum(t);
  EXPECT_TRUE(torch::equal(t, torch::full({3}, 3.0, torch::kFloat64)));
  b->barrier();
}

TEST(CollectiveTimeout, RefusesTimeoutsThatAreNotPositiveAndFinite) {
  auto single = make_single_process_communicator();
  EXPECT_EQ(single->collective_timeout(), kDefaultCollectiveTimeout);
  for (double bad : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    EXPECT_THROW(single->set_collective_timeout(bad), DistError) << bad;
  }
  single->set_collective_timeout(0.5);
  EXPECT_EQ(single->collective_timeout(), 0.5);
}

TEST(CollectiveTimeout, LabelsNestAndComeBack) {
  auto single = make_single_process_communicator();
  EXPECT_EQ(single->collective_label(), "");
  {
    CollectiveLabel outer(*single, "checkpoint");
    {
      CollectiveLabel inner(*single, "checksums");
      EXPECT_EQ(single->collective_label(), "checkpoint / checksums");
    }
    EXPECT_EQ(single->collective_label(), "checkpoint");
  }
  EXPECT_EQ(single->collective_label(), "");
}

}  // namespace
}  // namespace longrec::distributed

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  longrec::distributed::MpiRuntime::start();
  return RUN_ALL_TESTS();
}
