// Subcommands of the `longrec` executable. Each takes argv with argv[0] the
// subcommand name, and returns the process exit code.
#pragma once

#include <string>

namespace longrec::cli {

int run_prepare(int argc, const char* const* argv);
int run_synth(int argc, const char* const* argv);
int run_llama(int argc, const char* const* argv);
int run_info(int argc, const char* const* argv);
int run_train(int argc, const char* const* argv);
int run_eval(int argc, const char* const* argv);
int run_compare(int argc, const char* const* argv);
int run_export(int argc, const char* const* argv);
int run_recommend(int argc, const char* const* argv);
int run_serve(int argc, const char* const* argv);
int run_bench(int argc, const char* const* argv);
int run_tokenizer(int argc, const char* const* argv);
int run_sweep(int argc, const char* const* argv);

// Build facts for `info` (LibTorch, CUDA, NCCL, MPI, HDF5, threads, BLAS).
std::string build_info_text();

}  // namespace longrec::cli
