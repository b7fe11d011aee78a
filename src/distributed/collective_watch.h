// Completing MPI requests with a deadline (issue 14), private to the MPI
// backend. Every MPI collective is started in its non-blocking form and
// completed here: MPI_Test in a tight loop for the first milliseconds (a
// healthy collective completes there), then with short sleeps that grow with
// the wait (at most 5% of it, at most 0.2 ms), so that a rank waiting for a
// slow one leaves its core to others. Past the deadline the rank gives up:
// it sends a notice ("stuck at collective #N <name>, waited S s") to every
// other rank on the notice communicator (notices.h; MPI_Isend, never waited
// for), listens a few
// seconds for theirs, and throws CollectiveTimeout with the report. A rank
// that receives a notice while it waits in a collective answers with its own
// notice and gives up as well, at the time the first one does, so that every
// rank still in collectives reports; a rank that says nothing is stopped,
// hung, or busy outside collectives.
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "longrec/distributed/communicator.h"

namespace longrec::distributed::detail {

// One collective as a report names it: "#812 all_reduce_sum(dense gradients)".
struct CollectiveCall {
  std::int64_t seq = 0;
  const char* op = "";
  std::string label;
  std::string describe() const;
};

// The deadline keeper of one MPI communicator.
class CollectiveWatch {
 public:
  CollectiveWatch(int rank, int world) : rank_(rank), world_(world) {}

  // The next collective: its sequence number and name. Throws DistError once
  // this communicator has given up (its requests may still be under way).
  CollectiveCall next(const char* op, const std::string& label);

  // Completes `request` within `timeout` seconds, or throws CollectiveTimeout
  // (then the request stays under way: `keep` — its buffers — is kept alive).
  template <typename... Keep>
  void wait(MPI_Request& request, const CollectiveCall& call, double timeout, const Keep&... keep) {
    if (complete(request, call, timeout)) return;
    abandon(std::make_shared<std::tuple<Keep...>>(keep...));
    throw CollectiveTimeout(failure_);
  }
  // The non-throwing half: true when completed; false when given up (the
  // report is failure()).
  bool complete(MPI_Request& request, const CollectiveCall& call, double timeout);
  // Keeps the buffers of a request left under way alive for the process's life.
  void abandon(std::shared_ptr<void> buffers) { abandoned_.push_back(std::move(buffers)); }

  bool failed() const { return !failure_.empty(); }
  const std::string& failure() const { return failure_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Notice;
  // Gives up on `call`: notices out, listen, report into failure_.
  void give_up(const CollectiveCall& call, double waited, double timeout, const Notice* received, int received_from);

  int rank_, world_;
  std::int64_t seq_ = 0;
  std::string failure_;
  std::vector<std::shared_ptr<void>> abandoned_;
};

}  // namespace longrec::distributed::detail
