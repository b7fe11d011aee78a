// Build facts for `longrec info`: the only CLI file that sees LibTorch.
#include <mpi.h>

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/version.h>

#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "commands.h"
#include "longrec/data/history_store.h"

#ifdef LONGREC_WITH_CUDA
#include <cuda_runtime_api.h>
#include <nccl.h>
#endif

namespace longrec::cli {

namespace {

// "BLAS_INFO=..." from LibTorch's build configuration.
std::string torch_blas() {
  std::istringstream config(at::show_config());
  std::string line;
  while (std::getline(config, line)) {
    const auto pos = line.find("BLAS_INFO=");
    if (pos != std::string::npos) {
      auto value = line.substr(pos + 10);
      return value.substr(0, value.find(','));
    }
  }
  return "unknown";
}

}  // namespace

std::string build_info_text() {
  std::string out;
  out += fmt::format("longrec          {}\n", LONGREC_VERSION);
  out += fmt::format("LibTorch         {}\n", TORCH_VERSION);
  out += fmt::format("BLAS (LibTorch)  {}\n", torch_blas());
  out += fmt::format("threads          intra-op {}, inter-op {}, hardware {}\n", at::get_num_threads(),
                     at::get_num_interop_threads(), std::thread::hardware_concurrency());
  char mpi_version[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  if (MPI_Get_library_version(mpi_version, &length) == MPI_SUCCESS) {
    std::string text(mpi_version, static_cast<std::size_t>(length));
    out += fmt::format("MPI              {}\n", text.substr(0, text.find_first_of(",\n")));
  } else {
    out += "MPI              (MPI_Get_library_version failed)\n";
  }
  out += fmt::format("HDF5             {}\n", data::hdf5_version());
#ifdef LONGREC_WITH_CUDA
  int runtime = 0, driver = 0, nccl = 0;
  const bool runtime_ok = cudaRuntimeGetVersion(&runtime) == cudaSuccess;
  const bool driver_ok = cudaDriverGetVersion(&driver) == cudaSuccess && driver > 0;
  out += fmt::format("CUDA             built with {}.{}; runtime {}; driver {}\n", CUDART_VERSION / 1000,
                     (CUDART_VERSION % 1000) / 10,
                     runtime_ok ? fmt::format("{}.{}", runtime / 1000, (runtime % 1000) / 10) : "unavailable",
                     driver_ok ? fmt::format("{}.{}", driver / 1000, (driver % 1000) / 10) : "none (no GPU driver)");
  if (ncclGetVersion(&nccl) == ncclSuccess) {
    out += fmt::format("NCCL             {}.{}.{}\n", nccl / 10000, (nccl % 10000) / 100, nccl % 100);
  } else {
    out += "NCCL             (ncclGetVersion failed)\n";
  }
#else
  out += "CUDA             not built (LONGREC_CUDA=OFF or no toolkit found)\n";
  out += "NCCL             not built\n";
#endif
  return out;
}

}  // namespace longrec::cli
