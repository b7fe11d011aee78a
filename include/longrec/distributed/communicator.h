// Collectives on tensors between the data-parallel ranks of one job (design
// section 6): an MPI backend for CPU tensors and an NCCL backend for CUDA
// tensors behind one interface, plus a single-process one (world of 1).
// Every library call is checked; a failure throws DistError naming the call,
// the file and line, and the library's own error text.
//
// No collective waits forever (issue 14): one that has not completed within
// the communicator's collective timeout throws CollectiveTimeout, whose text
// names the collective (sequence number, operation, label) and what the other
// ranks said: on MPI the rank that gives up tells every other rank (a small
// message on a communicator of its own) and listens a few seconds for theirs,
// so that a silent (stopped, hung) rank is named; ranks waiting in a
// collective answer and give up too. The CLI reports it and MPI_Abort ends the
// job. On NCCL a watchdog thread does the same for the GPU's collectives and
// ends the process itself (it cannot ask the other ranks).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "longrec/distributed/runtime.h"

namespace longrec::distributed {

// An all_to_all_v under way (Communicator::start_all_to_all_v): the rows
// travel while the caller computes. Every rank must complete every exchange
// it started, in the order started; the destructor waits for one that was
// not waited for.
class PendingExchange {
 public:
  virtual ~PendingExchange() = default;
  // The rows received, grouped by source rank (what all_to_all_v returns); once.
  virtual torch::Tensor wait() = 0;
  const std::vector<std::int64_t>& recv_counts() const { return recv_counts_; }

 protected:
  std::vector<std::int64_t> recv_counts_;
};

// A collective that did not complete within the collective timeout.
class CollectiveTimeout : public DistError {
 public:
  using DistError::DistError;
};

// Seconds a collective may wait for the other ranks unless set otherwise.
inline constexpr double kDefaultCollectiveTimeout = 300.0;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string backend() const = 0;  // "single" | "mpi" | "nccl"
  virtual const Topology& topology() const = 0;
  int rank() const { return topology().rank; }
  int world() const { return topology().world; }

  // Element-wise sum over ranks, in place (same shape everywhere).
  virtual void all_reduce_sum(torch::Tensor& tensor) = 0;
  // Concatenation along dim 0 of every rank's tensor (same shape everywhere): [W * n, ...].
  virtual torch::Tensor all_gather(const torch::Tensor& tensor) = 0;
  // Rows [sum(send_counts), ...] split by destination rank (send_counts[r]
  // rows to rank r, in rank order); returns the rows received, grouped by
  // source rank, and their counts in recv_counts.
  virtual torch::Tensor all_to_all_v(const torch::Tensor& rows, const std::vector<std::int64_t>& send_counts,
                                     std::vector<std::int64_t>& recv_counts) = 0;
  // all_to_all_v in two halves: the counts are exchanged before this returns
  // (W integers), the rows travel until wait(). Collectives issued in between
  // are fine as long as every rank issues them in the same order. Backends
  // without a non-blocking exchange complete it here (the default).
  virtual std::unique_ptr<PendingExchange> start_all_to_all_v(const torch::Tensor& rows,
                                                              const std::vector<std::int64_t>& send_counts);
  // root's tensor copied into every rank's (same shape and dtype), in place.
  virtual void broadcast(torch::Tensor& tensor, int root) = 0;
  virtual void barrier() = 0;

  // Where tensors must be to travel: the compute device for NCCL, the CPU for MPI.
  torch::Device wire_device(torch::Device compute) const {
    return backend() == "nccl" ? compute : torch::Device(torch::kCPU);
  }

  // How long (seconds, finite, > 0) a collective started from now on may wait
  // for the other ranks before this rank gives up (CollectiveTimeout on MPI,
  // the watchdog on NCCL); kDefaultCollectiveTimeout until set. A world of
  // one never waits.
  void set_collective_timeout(double seconds);
  double collective_timeout() const { return timeout_seconds_; }
  // What the collectives issued now are for (see CollectiveLabel), "" if unsaid.
  const std::string& collective_label() const { return label_; }

 private:
  friend class CollectiveLabel;
  double timeout_seconds_ = kDefaultCollectiveTimeout;
  std::string label_;
};

// Names what the collectives issued while it lives are for: a timeout's
// report shows "collective #812 all_reduce_sum(training step 40 / dense
// gradients, bucket 2)". Nested labels join the outer one with " / "; the
// previous label comes back when it ends.
class CollectiveLabel {
 public:
  CollectiveLabel(Communicator& comm, std::string label)
      : comm_(comm),
        previous_(std::exchange(comm.label_, comm.label_.empty() ? std::move(label) : comm.label_ + " / " + label)) {}
  ~CollectiveLabel() { comm_.label_ = std::move(previous_); }
  CollectiveLabel(const CollectiveLabel&) = delete;
  CollectiveLabel& operator=(const CollectiveLabel&) = delete;

 private:
  Communicator& comm_;
  std::string previous_;
};

// The element-wise sum over ranks of `tensor`, moved through the backend's
// wire device and returned on the tensor's own device (a world of one: the
// tensor itself). Collective.
torch::Tensor sum_over_ranks(Communicator& comm, const torch::Tensor& tensor);

// Concatenation along dim 0 of every rank's tensor when the ranks hold
// different numbers of rows (the other dims equal): counts gathered first,
// rows padded to the longest, gathered, unpadded. Returned on the tensor's
// device; `counts` (optional) receives the rows of each rank.
torch::Tensor all_gather_rows(Communicator& comm, const torch::Tensor& tensor,
                              std::vector<std::int64_t>* counts = nullptr);

// Checks all_to_all_v's arguments (one count per rank, summing to the rows)
// and returns the elements per row (an empty [0, D] tensor still has rows of D).
std::int64_t check_all_to_all_counts(const torch::Tensor& rows, const std::vector<std::int64_t>& send_counts,
                                     int world);

// A world of one: every collective is the identity.
std::unique_ptr<Communicator> make_single_process_communicator();
// The communicator of this process for tensors on `device`: a world of one
// unless started by mpirun/srun; then MPI for CPU tensors, NCCL for CUDA ones.
std::unique_ptr<Communicator> make_job_communicator(torch::Device device);
// MPI_COMM_WORLD (duplicated) for CPU tensors; starts the MPI runtime.
std::unique_ptr<Communicator> make_mpi_communicator();
// NCCL for CUDA tensors (builds with LONGREC_WITH_CUDA only): the GPU is
// local_rank % visible devices; `bootstrap` (MPI) carries the ncclUniqueId.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap);

}  // namespace longrec::distributed
