// MPI for the life of a process (torch-free, so that `main` can start it
// before anything else): initialised once, the node-local rank from a
// shared-memory split, finalised at exit. A rank that fails calls abort(),
// which takes the whole job down (MPI_Abort) instead of leaving the other
// ranks waiting in a collective.
#pragma once

#include <string>

#include "longrec/core/error.h"

namespace longrec::distributed {

class DistError : public Error {
 public:
  using Error::Error;
};

struct Topology {
  int rank = 0, world = 1;              // in the job
  int local_rank = 0, local_world = 1;  // on this node (shared-memory split): selects the GPU
};

// True when the process was started by mpirun/mpiexec or srun (their
// environment variables are present); a plain `longrec train` then runs as a
// world of one without touching MPI.
bool launched_by_mpi();
// This process's rank on its node (selects the GPU): from MPI when launched
// by mpirun/srun (starting the runtime), else 0.
int job_local_rank();

class MpiRuntime {
 public:
  // Initialises MPI on first use (MPI_THREAD_FUNNELED: only the main thread
  // calls MPI); later calls return the same runtime.
  static MpiRuntime& start();
  static bool started();
  const Topology& topology() const { return topology_; }
  // MPI_Abort(MPI_COMM_WORLD, code): every rank of the job exits.
  [[noreturn]] void abort(int code) const;
  ~MpiRuntime();

 private:
  MpiRuntime();
  Topology topology_;
};

// Throws DistError("<call> failed at <file>:<line>: <MPI error text>") unless code == MPI_SUCCESS.
void check_mpi(int code, const char* call, const char* file, int line);

}  // namespace longrec::distributed

#define LONGREC_MPI(call) ::longrec::distributed::check_mpi((call), #call, __FILE__, __LINE__)
