// `longrec info`: build facts, and a dataset's statistics when given one.
#include <fmt/format.h>

#include <cstdio>

#include "commands.h"
#include "longrec/core/config.h"
#include "longrec/core/error.h"
#include "longrec/data/dataset_stats.h"

namespace longrec::cli {

int run_info(int argc, const char* const* argv) {
  std::string dataset;
  bool verify = false;
  OptionRegistry r("info",
                   "Prints the build (LibTorch, CUDA, NCCL, MPI, HDF5 versions; threads; BLAS) and, given a\n"
                   "dataset directory, its statistics; with --verify, reads every event and checks the store.\n"
                   "Example: longrec info --dataset data/ml-1m --verify",
                   "info");
  r.add("info", "dataset", &dataset, "history store directory to describe (optional)");
  r.flag("info", "verify", &verify,
         "with --dataset: read every chunk and check item ids against the catalogue, time order per user, offsets, "
         "item counts and checksums; exit 1 naming the first problem");
  r.constraint([&] {
    if (verify && dataset.empty()) throw ConfigError("info.verify", "needs --dataset: the store to verify");
  });
  if (!r.parse(argc, argv)) return 0;
  fmt::print("{}", build_info_text());
  if (!dataset.empty()) {
    const data::HistoryStoreReader store(dataset);
    fmt::print("\n{}", data::format_dataset_stats(data::compute_dataset_stats(store), dataset));
    if (verify) {
      const auto report = data::verify_dataset(store);
      fmt::print("{}", data::format_verify_report(report));
      std::fflush(stdout);
      if (!report.problem.empty()) throw DataError(report.problem);
    }
  }
  return 0;
}

}  // namespace longrec::cli
