// `longrec bench data`: events/s through prepare (raw log -> history store)
// and through the loader (read + batch), on ML-1M and on a synthetic store of
// any size. Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "longrec/data/loader.h"

namespace longrec::bench {

struct DataBenchmarkOptions {
  std::string ml1m = "../shared/data/ml-1m/sequences_orig_ids.txt";  // raw sequences (empty: skip)
  std::string workdir = "bench-data";                                // scratch stores, removed at the end
  std::int64_t synth_events = 100'000'000;                           // 0: skip
  std::int64_t synth_mean_length = 1000;
  bool prepare_synth = true;  // also time prepare on the synthetic set written as a seq file
  data::LoaderConfig loader;
};

struct DataBenchmarkRow {
  std::string stage, data;
  std::int64_t events = 0;
  double seconds = 0;
};

// Every stage timed once, in order: prepare ML-1M, its loader epochs
// ("last" and "all" windows), synth generate, its loader epochs, prepare of
// the synthetic set as a raw file.
std::vector<DataBenchmarkRow> benchmark_data(const DataBenchmarkOptions& options);

}  // namespace longrec::bench
