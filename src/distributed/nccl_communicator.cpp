// NCCL backend: CUDA tensors, one communicator per job made from an
// ncclUniqueId that rank 0 creates and MPI broadcasts. Collectives run on the
// communicator's own stream, ordered against the caller's current (compute)
// stream with events both ways, so that no collective reads a tensor before
// the kernels writing it finished, and no kernel reads the result early.
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <exception>
#include <numeric>

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
    bootstrap.broadcast(bytes, 0);
    std::memcpy(&id, bytes.data_ptr(), sizeof(id));
    LONGREC_NCCL(ncclCommInitRank(&comm_, topology.world, id, topology.rank));
    LONGREC_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    LONGREC_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
    LONGREC_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
  }
  ~NcclCommunicator() override {
    // Unwinding from a failure: other ranks may sit in a collective forever,
    // and ncclCommDestroy would wait for them; abort the communicator instead.
    if (std::uncaught_exceptions() > 0) {
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
    ordered([&] {
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
    ordered([&] {
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
    ordered([&] {
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
    ordered([&] {
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
    ordered([&] {
      LONGREC_NCCL(ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), static_cast<std::size_t>(tensor.numel()),
                                 nccl_type(tensor), root, comm_, stream_));
    });
  }

  void barrier() override {
    auto token = torch::zeros({1}, torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCUDA, device_));
    all_reduce_sum(token);
    LONGREC_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

 private:
  // compute stream -> (event) -> our stream: the collective -> (event) -> compute stream.
  template <typename F>
  void ordered(F&& collective) {
    const auto compute = c10::cuda::getCurrentCUDAStream(device_).stream();
    LONGREC_CUDA_CHECK(cudaEventRecord(ready_, compute));
    LONGREC_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
    collective();
    LONGREC_CUDA_CHECK(cudaEventRecord(done_, stream_));
    LONGREC_CUDA_CHECK(cudaStreamWaitEvent(compute, done_, 0));
  }

  Topology topology_;
  int device_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap) {
  return std::make_unique<NcclCommunicator>(MpiRuntime::start().topology(), bootstrap);
}

}  // namespace longrec::distributed
