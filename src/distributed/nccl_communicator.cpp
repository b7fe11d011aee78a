// NCCL backend: CUDA tensors, one communicator per job made from an
// ncclUniqueId that rank 0 creates and MPI broadcasts. Collectives run on the
// communicator's own stream, ordered against the caller's current (compute)
// stream with events both ways, so that no collective reads a tensor before
// the kernels writing it finished, and no kernel reads the result early.
//
// A watchdog thread (issue 14) keeps every collective to the collective
// timeout: an event recorded behind each one on the communicator's stream is
// polled (cudaEventQuery, every 100 ms) together with ncclCommGetAsyncError;
// a collective not complete within the timeout of becoming the oldest one
// under way, or an asynchronous NCCL error, ends the process with a report
// naming the collective (its sequence number, operation and label): printed,
// ncclCommAbort (given 10 s), exit code 1, after which mpirun ends the job.
// The watchdog cannot ask the other ranks where they are (MPI belongs to the
// main thread, which may be blocked on the GPU), so unlike the MPI backend's
// report it names no silent rank: each rank still running reports its own.
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "longrec/distributed/communicator.h"

namespace longrec::distributed {

namespace {

void check_nccl(ncclResult_t code, const char* call, const char* file, int line) {
  if (code == ncclSuccess) return;
  throw DistError(fmt::format("{} failed at {}:{}: {} (NCCL error {})", call, file, line, ncclGetErrorString(code),
                              static_cast<int>(code)));
}

void check_cuda(cudaError_t code, const char* call, const char* file, int line) {
  if (code == cudaSuccess) return;
  throw DistError(
      fmt::format("{} failed at {}:{}: {} ({})", call, file, line, cudaGetErrorString(code), cudaGetErrorName(code)));
}

#define LONGREC_NCCL(call) check_nccl((call), #call, __FILE__, __LINE__)
#define LONGREC_CUDA_CHECK(call) check_cuda((call), #call, __FILE__, __LINE__)

ncclDataType_t nccl_type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32:
      return ncclFloat32;
    case torch::kFloat64:
      return ncclFloat64;
    case torch::kFloat16:
      return ncclFloat16;
    case torch::kBFloat16:
      return ncclBfloat16;
    case torch::kInt64:
      return ncclInt64;
    case torch::kInt32:
      return ncclInt32;
    case torch::kUInt8:
    case torch::kBool:
      return ncclUint8;
    default:
      throw DistError(fmt::format("no NCCL type for tensors of {}", c10::toString(t.scalar_type())));
  }
}

void require_cuda(const torch::Tensor& t, const char* what) {
  if (!t.is_cuda())
    throw DistError(fmt::format("{}: the NCCL backend moves CUDA tensors, got one on {}", what, t.device().str()));
  if (!t.is_contiguous()) throw DistError(fmt::format("{}: tensor must be contiguous", what));
}

// The watchdog: collectives under way, oldest first, each with its deadline.
class NcclWatchdog {
 public:
  NcclWatchdog(int device, const Topology& topology)
      : device_(device), rank_(topology.rank), world_(topology.world), thread_([this] { run(); }) {}
  ~NcclWatchdog() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
    for (auto& entry : pending_) {
      if (entry.event != nullptr) free_events_.push_back(entry.event);
    }
    for (auto event : free_events_) cudaEventDestroy(event);  // teardown: nothing left to report to
  }
  NcclWatchdog(const NcclWatchdog&) = delete;
  NcclWatchdog& operator=(const NcclWatchdog&) = delete;

  // The communicator whose asynchronous errors to poll, and to abort on a timeout.
  void set_comm(ncclComm_t comm) {
    std::lock_guard lock(mutex_);
    comm_ = comm;
  }
  // A host call that blocks until every rank joins (ncclCommInitRank): watched until host_done(seq).
  void watch_host(std::int64_t seq, std::string name, double timeout) {
    std::lock_guard lock(mutex_);
    push(Entry{seq, std::move(name), nullptr, false, Clock::now(), timeout});
  }
  void host_done(std::int64_t seq) {
    std::lock_guard lock(mutex_);
    for (auto& entry : pending_) {
      if (entry.seq == seq && entry.event == nullptr) entry.host_done = true;
    }
  }
  // After a collective was enqueued on `stream`: an event behind it, which must complete in time.
  void watch_stream(cudaStream_t stream, std::int64_t seq, std::string name, double timeout) {
    cudaEvent_t event = nullptr;
    {
      std::lock_guard lock(mutex_);
      if (!free_events_.empty()) {
        event = free_events_.back();
        free_events_.pop_back();
      }
    }
    if (event == nullptr) LONGREC_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    const auto recorded = cudaEventRecord(event, stream);
    if (recorded != cudaSuccess) {
      std::lock_guard lock(mutex_);
      free_events_.push_back(event);
      LONGREC_CUDA_CHECK(recorded);
    }
    std::lock_guard lock(mutex_);
    push(Entry{seq, std::move(name), event, false, Clock::now(), timeout});
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    std::int64_t seq;
    std::string name;   // "#812 all_reduce_sum(training step 40 / dense gradients, bucket 2)"
    cudaEvent_t event;  // nullptr: a host call, complete when host_done
    bool host_done;
    Clock::time_point since;  // enqueued, or became the oldest under way (later of the two)
    double timeout;
  };

  void push(Entry entry) { pending_.push_back(std::move(entry)); }

  void run() {
    if (const auto code = cudaSetDevice(device_); code != cudaSuccess) {
      give_up(fmt::format("the NCCL watchdog cannot select GPU {}: {}", device_, cudaGetErrorString(code)));
    }
    std::unique_lock lock(mutex_);
    while (!stop_) {
      wake_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stop_; });
      if (stop_) break;
      // Collectives complete in stream order: the completed ones leave from the front.
      while (!pending_.empty()) {
        auto& front = pending_.front();
        bool done = front.host_done;
        if (front.event != nullptr) {
          const auto code = cudaEventQuery(front.event);
          if (code != cudaSuccess && code != cudaErrorNotReady) {
            give_up(fmt::format("collective {}: cudaEventQuery failed: {} ({})", front.name, cudaGetErrorString(code),
                                cudaGetErrorName(code)));
          }
          done = code == cudaSuccess;
        }
        if (!done) break;
        if (front.event != nullptr) free_events_.push_back(front.event);
        pending_.pop_front();
        if (!pending_.empty()) pending_.front().since = std::max(pending_.front().since, Clock::now());
      }
      if (comm_ != nullptr) {
        ncclResult_t async = ncclSuccess;
        if (const auto code = ncclCommGetAsyncError(comm_, &async); code != ncclSuccess) {
          give_up(fmt::format("ncclCommGetAsyncError failed: {}", ncclGetErrorString(code)));
        }
        if (async != ncclSuccess && async != ncclInProgress) {
          give_up(fmt::format("NCCL reports an asynchronous error{}: {} (NCCL error {})",
                              pending_.empty() ? std::string() : " during collective " + pending_.front().name,
                              ncclGetErrorString(async), static_cast<int>(async)));
        }
      }
      if (!pending_.empty()) {
        const auto& front = pending_.front();
        const double waited = std::chrono::duration<double>(Clock::now() - front.since).count();
        if (waited > front.timeout) {
          give_up(
              fmt::format("collective {} did not complete on the GPU within {:g} s (NCCL watchdog; {} more "
                          "queued behind it); NCCL cannot tell which rank is missing: see the other ranks' "
                          "reports, a rank that reports nothing is stopped, hung, or busy outside collectives",
                          front.name, front.timeout, pending_.size() - 1));
        }
      }
    }
  }

  // Reports, aborts the communicator (10 s at most), ends the process.
  [[noreturn]] void give_up(const std::string& what) {
    std::fprintf(stderr, "longrec: rank %d of %d: error: %s\n", rank_, world_, what.c_str());
    std::fflush(stderr);
    if (comm_ != nullptr) {
      auto finished = std::make_shared<std::atomic<int>>(-1);
      std::thread([comm = comm_, finished] { finished->store(static_cast<int>(ncclCommAbort(comm))); }).detach();
      const auto until = Clock::now() + std::chrono::seconds(10);
      while (finished->load() < 0 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      const int code = finished->load();
      if (code < 0) {
        std::fprintf(stderr, "longrec: rank %d: ncclCommAbort did not return within 10 s\n", rank_);
      } else if (code != ncclSuccess) {
        std::fprintf(stderr, "longrec: rank %d: ncclCommAbort failed: %s\n", rank_,
                     ncclGetErrorString(static_cast<ncclResult_t>(code)));
      }
    }
    std::fflush(stderr);
    std::_Exit(1);  // a rank that exits non-zero makes mpirun end the job
  }

  const int device_, rank_, world_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  ncclComm_t comm_ = nullptr;
  std::deque<Entry> pending_;
  std::vector<cudaEvent_t> free_events_;
  std::thread thread_;  // last: starts once the members above exist
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const Topology& topology, Communicator& bootstrap) : topology_(topology) {
    int devices = 0;
    LONGREC_CUDA_CHECK(cudaGetDeviceCount(&devices));
    if (devices < 1) throw DistError("the NCCL backend needs a GPU; none is visible");
    device_ = topology.local_rank % devices;
    LONGREC_CUDA_CHECK(cudaSetDevice(device_));
    ncclUniqueId id;
    if (topology.rank == 0) LONGREC_NCCL(ncclGetUniqueId(&id));
    auto bytes = torch::from_blob(&id, {static_cast<std::int64_t>(sizeof(id))}, torch::kUInt8).clone();
    {
      CollectiveLabel label(bootstrap, "NCCL unique id");
      bootstrap.broadcast(bytes, 0);  // the MPI backend's own timeout
    }
    std::memcpy(&id, bytes.data_ptr(), sizeof(id));
    set_collective_timeout(bootstrap.collective_timeout());
    watchdog_ = std::make_unique<NcclWatchdog>(device_, topology);
    // Blocks until every rank joins: watched like a collective.
    const auto init = ++seq_;
    watchdog_->watch_host(init, fmt::format("#{} ncclCommInitRank(communicator set-up)", init), collective_timeout());
    LONGREC_NCCL(ncclCommInitRank(&comm_, topology.world, id, topology.rank));
    watchdog_->host_done(init);
    watchdog_->set_comm(comm_);
    LONGREC_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    LONGREC_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
    LONGREC_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
  }
  ~NcclCommunicator() override {
    watchdog_.reset();  // stops polling the communicator before it goes
    // Unwinding from a failure: other ranks may sit in a collective forever,
    // and ncclCommDestroy would wait for them; abort the communicator instead.
    if (comm_ == nullptr) {
      // ncclCommInitRank failed: nothing to end
    } else if (std::uncaught_exceptions() > 0) {
      ncclCommAbort(comm_);
    } else {
      ncclCommDestroy(comm_);
    }
    cudaEventDestroy(ready_);
    cudaEventDestroy(done_);
    cudaStreamDestroy(stream_);
  }
  std::string backend() const override { return "nccl"; }
  const Topology& topology() const override { return topology_; }

  void all_reduce_sum(torch::Tensor& tensor) override {
    require_cuda(tensor, "all_reduce_sum");
    ordered("all_reduce_sum", [&] {
      LONGREC_NCCL(ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), static_cast<std::size_t>(tensor.numel()),
                                 nccl_type(tensor), ncclSum, comm_, stream_));
    });
  }

  torch::Tensor all_gather(const torch::Tensor& tensor) override {
    require_cuda(tensor, "all_gather");
    auto shape = tensor.sizes().vec();
    if (shape.empty()) shape.push_back(1);
    shape[0] *= topology_.world;
    auto out = torch::empty(shape, tensor.options());
    ordered("all_gather", [&] {
      LONGREC_NCCL(ncclAllGather(tensor.data_ptr(), out.data_ptr(), static_cast<std::size_t>(tensor.numel()),
                                 nccl_type(tensor), comm_, stream_));
    });
    return out;
  }

  torch::Tensor all_to_all_v(const torch::Tensor& rows, const std::vector<std::int64_t>& send_counts,
                             std::vector<std::int64_t>& recv_counts) override {
    require_cuda(rows, "all_to_all_v");
    const auto W = static_cast<std::size_t>(topology_.world);
    const auto row_size = check_all_to_all_counts(rows, send_counts, topology_.world);
    // Counts first (a [W] int64 exchange), then the rows, as grouped point-to-point calls.
    auto counts = torch::tensor(send_counts, torch::kInt64).to(rows.device());
    auto received_counts = torch::empty_like(counts);
    ordered("all_to_all_v counts", [&] {
      LONGREC_NCCL(ncclGroupStart());
      for (std::size_t peer = 0; peer < W; ++peer) {
        LONGREC_NCCL(
            ncclSend(counts.data_ptr<std::int64_t>() + peer, 1, ncclInt64, static_cast<int>(peer), comm_, stream_));
        LONGREC_NCCL(ncclRecv(received_counts.data_ptr<std::int64_t>() + peer, 1, ncclInt64, static_cast<int>(peer),
                              comm_, stream_));
      }
      LONGREC_NCCL(ncclGroupEnd());
    });
    auto host = received_counts.to(torch::kCPU);  // synchronises: the shapes are needed on the host
    recv_counts.assign(host.data_ptr<std::int64_t>(), host.data_ptr<std::int64_t>() + W);
    auto shape = rows.sizes().vec();
    shape[0] = std::accumulate(recv_counts.begin(), recv_counts.end(), std::int64_t{0});
    auto out = torch::empty(shape, rows.options());
    const auto element = rows.element_size();
    ordered("all_to_all_v", [&] {
      LONGREC_NCCL(ncclGroupStart());
      std::int64_t send_at = 0, recv_at = 0;
      for (std::size_t peer = 0; peer < W; ++peer) {
        const auto n_send = send_counts[peer] * row_size, n_recv = recv_counts[peer] * row_size;
        if (n_send > 0) {
          LONGREC_NCCL(ncclSend(static_cast<const char*>(rows.data_ptr()) + send_at * element,
                                static_cast<std::size_t>(n_send), nccl_type(rows), static_cast<int>(peer), comm_,
                                stream_));
        }
        if (n_recv > 0) {
          LONGREC_NCCL(ncclRecv(static_cast<char*>(out.data_ptr()) + recv_at * element,
                                static_cast<std::size_t>(n_recv), nccl_type(rows), static_cast<int>(peer), comm_,
                                stream_));
        }
        send_at += n_send;
        recv_at += n_recv;
      }
      LONGREC_NCCL(ncclGroupEnd());
    });
    return out;
  }

  void broadcast(torch::Tensor& tensor, int root) override {
    require_cuda(tensor, "broadcast");
    ordered("broadcast", [&] {
      LONGREC_NCCL(ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), static_cast<std::size_t>(tensor.numel()),
                                 nccl_type(tensor), root, comm_, stream_));
    });
  }

  void barrier() override {
    CollectiveLabel label(*this, "barrier");
    auto token = torch::zeros({1}, torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCUDA, device_));
    all_reduce_sum(token);
    LONGREC_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

 private:
  // compute stream -> (event) -> our stream: the collective -> (event) -> compute stream;
  // the watchdog gets an event behind the collective.
  template <typename F>
  void ordered(const char* op, F&& collective) {
    const auto compute = c10::cuda::getCurrentCUDAStream(device_).stream();
    LONGREC_CUDA_CHECK(cudaEventRecord(ready_, compute));
    LONGREC_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
    collective();
    const auto seq = ++seq_;
    const auto& label = collective_label();
    watchdog_->watch_stream(stream_, seq,
                            label.empty() ? fmt::format("#{} {}", seq, op) : fmt::format("#{} {}({})", seq, op, label),
                            collective_timeout());
    LONGREC_CUDA_CHECK(cudaEventRecord(done_, stream_));
    LONGREC_CUDA_CHECK(cudaStreamWaitEvent(compute, done_, 0));
  }

  Topology topology_;
  int device_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  std::int64_t seq_ = 0;  // collectives issued (the report's #N)
  std::unique_ptr<NcclWatchdog> watchdog_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap) {
  return std::make_unique<NcclCommunicator>(MpiRuntime::start().topology(), bootstrap);
}

}  // namespace longrec::distributed
