#include <gtest/gtest.h>
#include <torch/torch.h>

#include "longrec/model/sampled_scores.h"

namespace longrec::model {

// The fused kernel against gather + bmm, forward and both gradients, in
// float64, with repeated rows (the scatter of row gradients) and with one and
// several threads (per-thread row buffers).
TEST(SampledScores, FusedKernelEqualsGatherAndBatchedProduct) {
  const int saved_threads = at::get_num_threads();
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    torch::manual_seed(threads);
    const std::int64_t P = 300, U = 17, K = 9, D = 6;
    auto q = torch::randn({P, D}, torch::kFloat64).requires_grad_(true);
    auto rows = torch::randn({U, D}, torch::kFloat64).requires_grad_(true);
    auto index = torch::randint(0, U, {P, K}, torch::kInt64);
    auto probe = torch::randn({P, K}, torch::kFloat64);
    auto fused = sampled_scores(q, rows, index);
    (fused * probe).sum().backward();
    auto grad_q = q.grad().clone(), grad_rows = rows.grad().clone();
    q.mutable_grad().zero_();
    rows.mutable_grad().zero_();
    auto reference = torch::bmm(rows.index_select(0, index.reshape({-1})).view({P, K, D}), q.unsqueeze(2)).squeeze(2);
    (reference * probe).sum().backward();
    EXPECT_TRUE(torch::allclose(fused, reference, 1e-12, 1e-12)) << threads;
    EXPECT_TRUE(torch::allclose(grad_q, q.grad(), 1e-12, 1e-12)) << threads;
    EXPECT_TRUE(torch::allclose(grad_rows, rows.grad(), 1e-12, 1e-12)) << threads;
  }
  at::set_num_threads(saved_threads);
}

}  // namespace longrec::model
