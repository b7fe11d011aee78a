// `longrec bench comm`: collective bandwidth between the ranks of a job, in
// the form of NVIDIA's nccl-tests (size, count, type, time, algbw, busbw,
// #wrong), for the collectives training uses. Torch-free interface for the CLI.
//
// Sizes follow nccl-tests: all_reduce moves `bytes` per rank; all_gather's
// `bytes` is the gathered result (each rank contributes bytes / W);
// all_to_all_v sends `bytes` per rank, bytes / W to each peer. Bus bandwidth
// is algbw x 2(W-1)/W for all_reduce and x (W-1)/W for the others: the rate
// each link carries, comparable to the hardware's peak.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longrec::bench {

struct CommBenchmarkOptions {
  std::int64_t min_bytes = 8;                       // -b
  std::int64_t max_bytes = std::int64_t{64} << 20;  // -e
  double factor = 2;                                // -f: multiply the size by this each row
  int iters = 20;                                   // -n: timed iterations per size
  int warmup = 5;                                   // -w: untimed iterations per size
  bool check = true;                                // -c: verify every result (counted in #wrong)
  std::string dtype = "float";                      // float | double | int64
  std::vector<std::string> collectives{"all_reduce", "all_gather", "all_to_all_v"};
  std::string device = "auto";  // auto | cpu | cuda
};

struct CommBenchmarkRow {
  std::string collective;
  std::int64_t bytes = 0, count = 0;  // count: elements (per rank for all_reduce / all_to_all_v; total for all_gather)
  std::string type;
  double time_us = 0;           // mean per iteration, slowest rank
  double algbw = 0, busbw = 0;  // GB/s
  std::int64_t wrong = 0;       // elements that differ from the expected result, all ranks
};

struct CommBenchmark {
  std::string backend;
  int world = 1;
  int rank = 0;  // of this process: rank 0 prints
  std::vector<CommBenchmarkRow> rows;
};

// Collective: every rank of the job calls it. Sizes are rounded down to whole
// elements (and to a multiple of W elements where the collective splits them).
CommBenchmark benchmark_collectives(const CommBenchmarkOptions& options);

// "8", "64K", "128M", "1G" (powers of 1024) -> bytes; throws ConfigError naming `key`.
std::int64_t parse_byte_size(const std::string& key, const std::string& text);

}  // namespace longrec::bench
