// Builds without a CUDA toolkit and NCCL have no NCCL backend; asking for it
// is an error the user can act on.
#include "longrec/distributed/communicator.h"

namespace longrec::distributed {

std::unique_ptr<Communicator> make_nccl_communicator(Communicator&) {
  throw DistError("this build has no NCCL backend: configure with a CUDA toolkit and NCCL (-DLONGREC_CUDA=ON)");
}

}  // namespace longrec::distributed
