#include "longrec/distributed/gradient_sync.h"

#include <fmt/format.h>

namespace longrec::distributed {

GradientSync::GradientSync(Communicator& comm, std::int64_t bucket_bytes) : comm_(comm), bucket_bytes_(bucket_bytes) {}

int GradientSync::all_reduce(const std::vector<torch::Tensor>& parameters) {
  torch::NoGradGuard no_grad;
  if (comm_.world() == 1) return 0;
  std::vector<torch::Tensor> grads;
  for (auto parameter : parameters) {
    if (!parameter.grad().defined()) parameter.mutable_grad() = torch::zeros_like(parameter);
    grads.push_back(parameter.grad());
  }
  int collectives = 0;
  std::size_t first = 0;
  while (first < grads.size()) {
    // A bucket: consecutive gradients of one dtype and device, up to the byte budget (at least one).
    std::size_t last = first + 1;
    std::int64_t bytes = grads[first].numel() * grads[first].element_size();
    while (last < grads.size() && grads[last].scalar_type() == grads[first].scalar_type() &&
           grads[last].device() == grads[first].device() &&
           bytes + grads[last].numel() * grads[last].element_size() <= bucket_bytes_) {
      bytes += grads[last].numel() * grads[last].element_size();
      ++last;
    }
    std::vector<torch::Tensor> flat;
    for (auto i = first; i < last; ++i) flat.push_back(grads[i].reshape({-1}));
    // Through the device the backend moves (the CPU for MPI), back to the gradients'.
    auto bucket = torch::cat(flat).to(comm_.wire_device(grads[first].device()));
    {
      CollectiveLabel label(comm_, fmt::format("dense gradients, bucket {}", collectives + 1));
      comm_.all_reduce_sum(bucket);
    }
    bucket = bucket.to(grads[first].device());
    std::int64_t at = 0;
    for (auto i = first; i < last; ++i) {
      const auto n = grads[i].numel();
      grads[i].copy_(bucket.slice(0, at, at + n).view_as(grads[i]));
      at += n;
    }
    ++collectives;
    first = last;
  }
  return collectives;
}

}  // namespace longrec::distributed
