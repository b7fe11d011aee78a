#include "longrec/train/peak_flops.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>

namespace longrec::train {

double measure_matmul_peak_flops(torch::Device device) {
  torch::NoGradGuard no_grad;
  const bool gpu = device.is_cuda();
  const std::int64_t n = gpu ? 8192 : 1024;
  const auto options = torch::TensorOptions().device(device).dtype(gpu ? torch::kBFloat16 : torch::kFloat32);
  // A private generator: measuring must not move the training RNG (dropout
  // after a resume would differ from an uninterrupted run).
  auto generator = at::make_generator<at::CPUGeneratorImpl>(0);
  auto a = at::randn({n, n}, generator, torch::kFloat32).to(options);
  auto b = at::randn({n, n}, generator, torch::kFloat32).to(options);
  auto c = torch::matmul(a, b);  // warm-up
  double best = 0;
  for (int repeat = 0; repeat < 5; ++repeat) {
    if (gpu) torch::cuda::synchronize();
    const auto start = std::chrono::steady_clock::now();
    const int iterations = gpu ? 20 : 4;
    for (int i = 0; i < iterations; ++i) c = torch::matmul(a, b);
    if (gpu) torch::cuda::synchronize();
    (void)c.sum().item<float>();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 2.0 * n * n * n * iterations / seconds);
  }
  return best;
}

}  // namespace longrec::train
