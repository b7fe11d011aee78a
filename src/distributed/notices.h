// The notice communicator (issue 14): a duplicate of MPI_COMM_WORLD that the
// runtime makes when it starts, on which a rank that gives up on a collective
// tells the others where it is stuck (collective_watch.h). Private to the
// distributed module; torch-free.
#pragma once

#include <mpi.h>

namespace longrec::distributed::detail {

// MPI_COMM_NULL until the runtime has started (and after it finished).
MPI_Comm notice_communicator();

}  // namespace longrec::distributed::detail
