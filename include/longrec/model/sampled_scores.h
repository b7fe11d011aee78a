// Dot products of each query with its own sampled rows, without
// materialising the [P, K, D] gathered rows (the per-position negatives of
// the sampled softmax: P ~ 2x10^4 positions x K = 128 negatives x D).
#pragma once

#include <torch/torch.h>

namespace longrec::model {

// queries: [P, D]; rows: [U, D]; index: [P, K] int64 into rows.
// Returns [P, K] with out[p, k] = <queries[p], rows[index[p, k]]>,
// differentiable in queries and rows. On CPU a fused kernel (parallel over
// positions; row gradients in per-thread buffers); elsewhere gather + bmm.
torch::Tensor sampled_scores(const torch::Tensor& queries, const torch::Tensor& rows, const torch::Tensor& index);

}  // namespace longrec::model
