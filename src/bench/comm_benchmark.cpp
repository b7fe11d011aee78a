#include "longrec/bench/comm_benchmark.h"

#include <torch/torch.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <functional>

#include <fmt/format.h>

#include "longrec/core/error.h"
#include "longrec/distributed/communicator.h"

namespace longrec::bench {

using distributed::Communicator;
using distributed::make_job_communicator;
using distributed::sum_over_ranks;

namespace {

torch::Dtype dtype_of(const std::string& name) {
  if (name == "float") return torch::kFloat32;
  if (name == "double") return torch::kFloat64;
  if (name == "int64") return torch::kInt64;
  throw ConfigError("bench.dtype", fmt::format("got '{}', expected float, double or int64", name));
}

// Small integers (exact in every type) that depend on the rank and the index,
// so that a misplaced or dropped element is counted as wrong.
torch::Tensor pattern(std::int64_t count, std::int64_t base, torch::TensorOptions options) {
  return (torch::arange(count, torch::kInt64).remainder(13) + base).to(options);
}

std::int64_t count_wrong(Communicator& comm, const torch::Tensor& got, const torch::Tensor& want) {
  const auto wrong = (got.to(torch::kCPU) != want.to(torch::kCPU)).sum().reshape({1}).to(torch::kInt64);
  return sum_over_ranks(comm, wrong).item<std::int64_t>();
}

double slowest(Communicator& comm, double seconds, torch::Device device) {
  // The slowest rank's time (the communicator reduces by sum only: gather and take the max).
  auto all = comm.all_gather(torch::tensor({seconds}, torch::kFloat64).to(comm.wire_device(device))).to(torch::kCPU);
  return all.max().item<double>();
}

}  // namespace

std::int64_t parse_byte_size(const std::string& key, const std::string& text) {
  std::int64_t value = 0;
  const auto* end = text.data() + text.size();
  const auto [rest, ec] = std::from_chars(text.data(), end, value);
  std::int64_t unit = 1;
  if (rest != end) {
    const std::string suffix(rest, end);
    if (suffix == "K" || suffix == "k")
      unit = 1 << 10;
    else if (suffix == "M" || suffix == "m")
      unit = 1 << 20;
    else if (suffix == "G" || suffix == "g")
      unit = std::int64_t{1} << 30;
    else
      unit = 0;
  }
  if (ec != std::errc() || unit == 0 || value < 1) {
    throw ConfigError(key,
                      fmt::format("'{}' is not a size: expected a positive integer with an optional K, M or G", text));
  }
  // Buffers of this size are allocated per rank (and value * unit must not wrap).
  constexpr std::int64_t kMaxBytes = std::int64_t{16} << 30;
  if (value > kMaxBytes / unit) throw ConfigError(key, fmt::format("'{}' is more than 16G", text));
  return value * unit;
}

CommBenchmark benchmark_collectives(const CommBenchmarkOptions& options) {
  const auto dtype = dtype_of(options.dtype);
  if (options.factor <= 1) throw ConfigError("bench.factor", fmt::format("got {}, expected > 1", options.factor));
  if (options.min_bytes > options.max_bytes) {
    throw ConfigError("bench.min_bytes",
                      fmt::format("{} exceeds bench.max_bytes = {}", options.min_bytes, options.max_bytes));
  }
  torch::Device device = torch::kCPU;
  if (options.device == "cuda" || (options.device == "auto" && torch::cuda::is_available())) {
    if (!torch::cuda::is_available()) throw ConfigError("bench.device", "cuda requested but no GPU is available");
    device = torch::kCUDA;
  }
  auto comm = make_job_communicator(device);
  if (device.is_cuda()) {
    device = torch::Device(torch::kCUDA,
                           static_cast<c10::DeviceIndex>(comm->topology().local_rank % torch::cuda::device_count()));
  }
  const auto W = comm->world(), rank = comm->rank();
  const auto opts = torch::TensorOptions().dtype(dtype).device(device);
  const auto element = static_cast<std::int64_t>(torch::elementSize(dtype));
  const auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };

  CommBenchmark out;
  out.backend = comm->backend();
  out.world = W;
  out.rank = rank;
  for (const auto& name : options.collectives) {
    if (name != "all_reduce" && name != "all_gather" && name != "all_to_all_v") {
      throw ConfigError("bench.collectives", fmt::format("unknown collective '{}', expected all_reduce, all_gather "
                                                         "or all_to_all_v",
                                                         name));
    }
    for (double size = static_cast<double>(options.min_bytes); size <= static_cast<double>(options.max_bytes) * 1.0001;
         size *= options.factor) {
      // Whole elements; a multiple of W where the collective splits them among the ranks.
      std::int64_t count = static_cast<std::int64_t>(size) / element;
      if (name != "all_reduce") count -= count % W;
      if (count < std::max<std::int64_t>(1, name == "all_reduce" ? 1 : W)) continue;
      const std::int64_t per_peer = count / W;

      torch::Tensor input, expected;
      std::vector<std::int64_t> send_counts(static_cast<std::size_t>(W), per_peer), recv_counts;
      std::function<torch::Tensor()> run, check_run;
      if (name == "all_reduce") {
        input = pattern(count, rank + 1, opts);
        expected = pattern(count, 0, opts) * W + W * (W + 1) / 2;
        // Timed in place on one buffer (its values drift; nobody checks them);
        // checked once on a fresh copy of the input.
        auto scratch = input.clone();
        run = [&comm, scratch]() mutable {
          comm->all_reduce_sum(scratch);
          return scratch;
        };
        check_run = [&] {
          auto t = input.clone();
          comm->all_reduce_sum(t);
          return t;
        };
      } else if (name == "all_gather") {
        input = pattern(per_peer, 100 * rank, opts);
        std::vector<torch::Tensor> parts;
        for (int r = 0; r < W; ++r) parts.push_back(pattern(per_peer, 100 * r, opts));
        expected = torch::cat(parts);
        run = [&] { return comm->all_gather(input); };
      } else {
        // To peer d: (rank, d) coded as 100 rank + d.
        std::vector<torch::Tensor> parts, want;
        for (int d = 0; d < W; ++d) parts.push_back(pattern(per_peer, 100 * rank + d, opts));
        for (int s = 0; s < W; ++s) want.push_back(pattern(per_peer, 100 * s + rank, opts));
        input = torch::cat(parts);
        expected = torch::cat(want);
        run = [&] { return comm->all_to_all_v(input, send_counts, recv_counts); };
      }
      for (int i = 0; i < options.warmup; ++i) run();
      sync();
      comm->barrier();
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < options.iters; ++i) run();
      sync();
      const double seconds =
          slowest(*comm, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), device) /
          options.iters;

      CommBenchmarkRow row;
      row.collective = name;
      row.count = count;
      row.bytes = count * element;
      row.type = options.dtype;
      row.time_us = seconds * 1e6;
      row.algbw = static_cast<double>(row.bytes) / seconds / 1e9;
      const double links = W > 1 ? static_cast<double>(W - 1) / W : 0.0;
      row.busbw = row.algbw * (name == "all_reduce" ? 2 * links : links);
      row.wrong = options.check ? count_wrong(*comm, check_run ? check_run() : run(), expected) : -1;
      out.rows.push_back(row);
    }
  }
  return out;
}

}  // namespace longrec::bench
