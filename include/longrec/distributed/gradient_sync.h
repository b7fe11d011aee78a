// Dense gradients summed over the ranks after backward (design section 6):
// flattened into buckets of at most `bucket_bytes` (one collective per bucket
// instead of one per parameter), all-reduced, written back. Every rank must
// call it with the same parameters in the same order; a parameter without a
// gradient on some rank counts as zeros there, so all ranks stay in step.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "longrec/distributed/communicator.h"

namespace longrec::distributed {

class GradientSync {
 public:
  explicit GradientSync(Communicator& comm, std::int64_t bucket_bytes = std::int64_t{25} << 20);
  // Sums every parameter's gradient over the ranks, in place. Returns the
  // number of collectives issued (buckets).
  int all_reduce(const std::vector<torch::Tensor>& parameters);

 private:
  Communicator& comm_;
  std::int64_t bucket_bytes_;
};

}  // namespace longrec::distributed
