// `longrec`: one executable, one subcommand per job.
#include <cstdio>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "commands.h"
#include "longrec/core/error.h"
#include "longrec/distributed/runtime.h"

namespace {

struct Subcommand {
  const char* name;
  const char* summary;
  int (*run)(int, const char* const*);
};

constexpr Subcommand kSubcommands[] = {
    {"prepare", "raw interaction log (+ item text) -> HDF5 history store", longrec::cli::run_prepare},
    {"synth", "synthetic long-history users -> HDF5 history store", longrec::cli::run_synth},
    {"llama", "load a Hugging Face Llama directory into the Llama blocks (and run token ids)", longrec::cli::run_llama},
    {"train", "train HSTU or SASRec on a history store (periodic eval, checkpoints)", longrec::cli::run_train},
    {"eval", "evaluate a checkpoint by exact full ranking", longrec::cli::run_eval},
    {"compare", "paired significance test of two evaluations on the same users", longrec::cli::run_compare},
    {"export", "checkpoint (any number of ranks) -> self-contained HDF5 serving bundle", longrec::cli::run_export},
    {"recommend", "top-K items for histories from a serving bundle", longrec::cli::run_recommend},
    {"serve", "HTTP JSON recommendations from a serving bundle, with cached per-user state", longrec::cli::run_serve},
    {"tokenizer", "SentencePiece tokenizer: train on a store's item texts, encode text", longrec::cli::run_tokenizer},
    {"sweep", "scaling-law sweeps: plan a descriptor's points, run them (resumable), collect results.csv",
     longrec::cli::run_sweep},
    {"info", "build facts (versions, threads, BLAS) and dataset statistics", longrec::cli::run_info},
#ifdef LONGREC_WITH_BENCH
    {"bench", "benchmarks: data, train (throughput, MFU), tokens (token vs full cost), llama, comm, serve",
     longrec::cli::run_bench},
#endif
};

void print_usage() {
  fmt::print(
      "Usage: longrec <command> [--config FILE] [--section.key=value ...]\n\n"
      "Trains generative sequential recommenders on very long user histories.\n\nCommands:\n");
  for (const auto& c : kSubcommands) fmt::print("  {:<10} {}\n", c.name, c.summary);
  fmt::print("\n`longrec <command> --help` lists every key of a command with its default.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  for (const auto& c : kSubcommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    int code = 0;
    std::string message;
    try {
      return c.run(argc - 1, argv + 1);
    } catch (const longrec::ConfigError& e) {
      code = 2;
      message = e.what();
    } catch (const std::exception& e) {
      code = 1;
      message = e.what();
    }
    // Under mpirun/srun one rank's failure ends the job: its message first,
    // then MPI_Abort, so that no other rank waits in a collective forever.
    if (longrec::distributed::MpiRuntime::started() && longrec::distributed::MpiRuntime::start().topology().world > 1) {
      const auto& topology = longrec::distributed::MpiRuntime::start().topology();
      fmt::print(stderr, "longrec {}: rank {} of {}: error: {}\n", c.name, topology.rank, topology.world, message);
      std::fflush(stderr);
      longrec::distributed::MpiRuntime::start().abort(code);
    }
    fmt::print(stderr, "longrec {}: error: {}\n", c.name, message);
    return code;
  }
  fmt::print(stderr, "longrec: unknown command '{}'\n\n", argv[1]);
  print_usage();
  return 2;
}
