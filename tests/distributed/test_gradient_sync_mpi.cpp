// Under `mpirun -np 2`: dense gradients summed over the ranks, in buckets.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "longrec/distributed/gradient_sync.h"

namespace longrec::distributed {

Communicator& test_communicator();

TEST(GradientSync, SumsEveryGradientOverTheRanksInBuckets) {
  auto& comm = test_communicator();
  const int W = comm.world(), r = comm.rank();
  torch::manual_seed(1);  // the same parameters on every rank
  torch::nn::Linear a(7, 5), b(5, 3);
  torch::nn::Embedding unused(4, 2);  // no gradient on rank 0: zeros there
  std::vector<torch::Tensor> parameters;
  for (auto* m : std::vector<torch::nn::Module*>{a.get(), b.get(), unused.get()}) {
    for (auto& p : m->parameters()) parameters.push_back(p);
  }
  auto x = torch::arange(14, torch::kFloat32).view({2, 7}) * (r + 1);
  b(torch::relu(a(x))).sum().backward();
  if (r != 0) unused->weight.mutable_grad() = torch::full({4, 2}, static_cast<float>(r));
  // What each rank's gradient is, summed by hand from every rank's inputs.
  std::vector<torch::Tensor> expected(parameters.size());
  for (int k = 0; k < W; ++k) {
    torch::manual_seed(1);
    torch::nn::Linear a2(7, 5), b2(5, 3);
    b2(torch::relu(a2(torch::arange(14, torch::kFloat32).view({2, 7}) * (k + 1)))).sum().backward();
    std::vector<torch::Tensor> grads;
    for (auto& p : a2->parameters()) grads.push_back(p.grad());
    for (auto& p : b2->parameters()) grads.push_back(p.grad());
    grads.push_back(torch::full({4, 2}, k == 0 ? 0.0f : static_cast<float>(k)));
    for (std::size_t i = 0; i < grads.size(); ++i) {
      expected[i] = expected[i].defined() ? expected[i] + grads[i] : grads[i];
    }
  }
  GradientSync sync(comm, /*bucket_bytes=*/64);  // tiny buckets: several collectives
  EXPECT_GT(sync.all_reduce(parameters), 1);
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    EXPECT_TRUE(torch::allclose(parameters[i].grad(), expected[i], 1e-6, 1e-6)) << "parameter " << i;
  }
}

}  // namespace longrec::distributed
