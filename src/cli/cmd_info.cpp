// `longrec info`: build facts, and a dataset's statistics when given one.
#include <fmt/format.h>

#include "commands.h"
#include "longrec/core/config.h"
#include "longrec/data/dataset_stats.h"

namespace longrec::cli {

int run_info(int argc, const char* const* argv) {
  std::string dataset;
  OptionRegistry r("info",
                   "Prints the build (LibTorch, CUDA, NCCL, MPI, HDF5 versions; threads; BLAS) and, given a\n"
                   "dataset directory, its statistics.\nExample: longrec info --dataset data/ml-1m",
                   "info");
  r.add("info", "dataset", &dataset, "history store directory to describe (optional)");
  if (!r.parse(argc, argv)) return 0;
  fmt::print("{}", build_info_text());
  if (!dataset.empty()) {
    const data::HistoryStoreReader store(dataset);
    fmt::print("\n{}", data::format_dataset_stats(data::compute_dataset_stats(store), dataset));
  }
  return 0;
}

}  // namespace longrec::cli
