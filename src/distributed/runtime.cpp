#include "longrec/distributed/runtime.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "notices.h"

namespace longrec::distributed {

namespace detail {
namespace {
MPI_Comm g_notices = MPI_COMM_NULL;
}
MPI_Comm notice_communicator() { return g_notices; }
}  // namespace detail

bool launched_by_mpi() {
  for (const char* name :
       {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS", "SLURM_STEP_NUM_TASKS"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

int job_local_rank() { return launched_by_mpi() ? MpiRuntime::start().topology().local_rank : 0; }

void check_mpi(int code, const char* call, const char* file, int line) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  throw DistError(fmt::format("{} failed at {}:{}: {} (MPI error {})", call, file, line,
                              length > 0 ? std::string(text, static_cast<std::size_t>(length)) : "unknown error",
                              code));
}

namespace {
MpiRuntime* g_runtime = nullptr;
}

MpiRuntime& MpiRuntime::start() {
  static MpiRuntime runtime;
  g_runtime = &runtime;
  return runtime;
}

bool MpiRuntime::started() { return g_runtime != nullptr; }

MpiRuntime::MpiRuntime() {
  int initialized = 0;
  LONGREC_MPI(MPI_Initialized(&initialized));
  if (!initialized) {
    int provided = 0;
    LONGREC_MPI(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
    if (provided < MPI_THREAD_FUNNELED) {
      throw DistError(fmt::format("MPI provides thread level {}, longrec needs MPI_THREAD_FUNNELED", provided));
    }
  }
  // Errors come back as codes (checked) instead of aborting inside MPI.
  LONGREC_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  auto& t = topology_;
  LONGREC_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &t.rank));
  LONGREC_MPI(MPI_Comm_size(MPI_COMM_WORLD, &t.world));
  MPI_Comm node;
  LONGREC_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, t.rank, MPI_INFO_NULL, &node));
  LONGREC_MPI(MPI_Comm_rank(node, &t.local_rank));
  LONGREC_MPI(MPI_Comm_size(node, &t.local_world));
  LONGREC_MPI(MPI_Comm_free(&node));
  // Where a rank that gives up on a collective tells the others (collective_watch.h).
  LONGREC_MPI(MPI_Comm_dup(MPI_COMM_WORLD, &detail::g_notices));
  LONGREC_MPI(MPI_Comm_set_errhandler(detail::g_notices, MPI_ERRORS_RETURN));
}

MpiRuntime::~MpiRuntime() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && detail::g_notices != MPI_COMM_NULL && MPI_Comm_free(&detail::g_notices) != MPI_SUCCESS) {
    std::fprintf(stderr, "longrec: MPI_Comm_free of the notice communicator failed\n");
  }
  if (!finalized) MPI_Finalize();
  g_runtime = nullptr;
}

void MpiRuntime::abort(int code) const {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; in case it does
}

}  // namespace longrec::distributed
