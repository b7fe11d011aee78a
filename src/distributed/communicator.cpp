#include "longrec/distributed/communicator.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cmath>
#include <memory>
#include <numeric>
#include <tuple>
#include <utility>

#include <fmt/format.h>

#include "collective_watch.h"

namespace longrec::distributed {

namespace {

class SingleProcessCommunicator final : public Communicator {
 public:
  std::string backend() const override { return "single"; }
  const Topology& topology() const override { return topology_; }
  void all_reduce_sum(torch::Tensor&) override {}
  torch::Tensor all_gather(const torch::Tensor& tensor) override { return tensor.clone(); }
  torch::Tensor all_to_all_v(const torch::Tensor& rows, const std::vector<std::int64_t>& send_counts,
                             std::vector<std::int64_t>& recv_counts) override {
    check_all_to_all_counts(rows, send_counts, 1);
    recv_counts = send_counts;
    return rows.clone();
  }
  void broadcast(torch::Tensor&, int root) override {
    if (root != 0) throw DistError(fmt::format("broadcast from rank {} in a world of 1", root));
  }
  void barrier() override {}

 private:
  Topology topology_;
};

MPI_Datatype mpi_type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32:
      return MPI_FLOAT;
    case torch::kFloat64:
      return MPI_DOUBLE;
    case torch::kInt64:
      return MPI_INT64_T;
    case torch::kInt32:
      return MPI_INT32_T;
    case torch::kUInt8:
    case torch::kBool:
      return MPI_UINT8_T;
    case torch::kBFloat16:
    case torch::kFloat16:
      return MPI_UINT16_T;  // moved, never reduced (all_reduce refuses them)
    default:
      throw DistError(fmt::format("no MPI type for tensors of {}", c10::toString(t.scalar_type())));
  }
}

int as_count(std::int64_t n, const char* what) {
  if (n < 0 || n > INT_MAX) throw DistError(fmt::format("{}: {} elements exceed MPI's int count", what, n));
  return static_cast<int>(n);
}

void require_cpu(const torch::Tensor& t, const char* what) {
  if (!t.device().is_cpu()) {
    throw DistError(fmt::format("{}: the MPI backend moves CPU tensors, got one on {}", what, t.device().str()));
  }
  if (!t.is_contiguous()) throw DistError(fmt::format("{}: tensor must be contiguous", what));
}

// Where each rank's rows sit in an all_to_all_v's send and receive buffers (MPI counts are ints).
struct ExchangeLayout {
  std::vector<int> send_counts, send_offsets, recv_counts, recv_offsets;
  std::vector<std::int64_t> recv_shape;
};

ExchangeLayout exchange_layout(const torch::Tensor& rows, const std::vector<std::int64_t>& send_counts,
                               const std::vector<std::int64_t>& recv_counts, std::int64_t row_size) {
  const auto W = send_counts.size();
  ExchangeLayout out{std::vector<int>(W), std::vector<int>(W), std::vector<int>(W), std::vector<int>(W), {}};
  std::int64_t send_at = 0, recv_at = 0;
  for (std::size_t r = 0; r < W; ++r) {
    out.send_counts[r] = as_count(send_counts[r] * row_size, "all_to_all_v send");
    out.send_offsets[r] = as_count(send_at, "all_to_all_v send offset");
    out.recv_counts[r] = as_count(recv_counts[r] * row_size, "all_to_all_v receive");
    out.recv_offsets[r] = as_count(recv_at, "all_to_all_v receive offset");
    send_at += send_counts[r] * row_size;
    recv_at += recv_counts[r] * row_size;
  }
  out.recv_shape = rows.sizes().vec();
  out.recv_shape[0] = std::accumulate(recv_counts.begin(), recv_counts.end(), std::int64_t{0});
  return out;
}

// MPI_Ialltoallv and what it needs alive until it completes: the send
// buffer, the receive buffer and the count / offset arrays.
class MpiPendingExchange final : public PendingExchange {
 public:
  MpiPendingExchange(torch::Tensor rows, std::vector<std::int64_t> recv_counts,
                     std::shared_ptr<const ExchangeLayout> layout, MPI_Comm comm,
                     std::shared_ptr<detail::CollectiveWatch> watch, detail::CollectiveCall call, double timeout)
      : rows_(std::move(rows)),
        layout_(std::move(layout)),
        watch_(std::move(watch)),
        call_(std::move(call)),
        timeout_(timeout) {
    recv_counts_ = std::move(recv_counts);
    out_ = torch::empty(layout_->recv_shape, rows_.options());
    LONGREC_MPI(MPI_Ialltoallv(rows_.data_ptr(), layout_->send_counts.data(), layout_->send_offsets.data(),
                               mpi_type(rows_), out_.data_ptr(), layout_->recv_counts.data(),
                               layout_->recv_offsets.data(), mpi_type(rows_), comm, &request_));
  }
  ~MpiPendingExchange() override {
    if (request_ == MPI_REQUEST_NULL) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    // Destructors cannot throw: a failed wait is reported here and the job
    // goes on to fail elsewhere. After a timeout the buffers stay alive (MPI
    // may still write them) and nothing waits again.
    try {
      const bool gave_up_before = watch_->failed();
      if (gave_up_before || !watch_->complete(request_, call_, timeout_)) {
        watch_->abandon(
            std::make_shared<std::tuple<torch::Tensor, torch::Tensor, std::shared_ptr<const ExchangeLayout>>>(
                rows_, out_, layout_));
        if (!gave_up_before) std::fprintf(stderr, "longrec: %s\n", watch_->failure().c_str());
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "longrec: completing an abandoned all_to_all_v failed: %s\n", e.what());
    }
  }
  torch::Tensor wait() override {
    if (request_ == MPI_REQUEST_NULL) throw DistError("all_to_all_v: wait() called twice");
    watch_->wait(request_, call_, timeout_, rows_, out_, layout_);
    return out_;
  }

 private:
  torch::Tensor rows_, out_;
  std::shared_ptr<const ExchangeLayout> layout_;
  std::shared_ptr<detail::CollectiveWatch> watch_;
  detail::CollectiveCall call_;
  double timeout_;
  MPI_Request request_ = MPI_REQUEST_NULL;
};

// Every collective in its non-blocking form, completed by the watch (a
// deadline; collective_watch.h); buffers are tensors or shared, so that a
// collective given up on can stay under way without writing freed memory.
class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const Topology& topology)
      : topology_(topology), watch_(std::make_shared<detail::CollectiveWatch>(topology.rank, topology.world)) {
    auto comm = std::make_shared<MPI_Comm>(MPI_COMM_NULL);
    MPI_Request request = MPI_REQUEST_NULL;
    const auto call = watch_->next("comm_idup", "communicator set-up");
    LONGREC_MPI(MPI_Comm_idup(MPI_COMM_WORLD, comm.get(), &request));
    watch_->wait(request, call, collective_timeout(), comm);
    comm_ = *comm;
    LONGREC_MPI(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }
  std::string backend() const override { return "mpi"; }
  const Topology& topology() const override { return topology_; }

  void all_reduce_sum(torch::Tensor& tensor) override {
    require_cpu(tensor, "all_reduce_sum");
    if (tensor.scalar_type() == torch::kBFloat16 || tensor.scalar_type() == torch::kFloat16) {
      throw DistError("all_reduce_sum: MPI cannot sum 16-bit floats; reduce in float32");
    }
    const auto call = watch_->next("all_reduce_sum", collective_label());
    // In pieces of at most 2^30 elements: MPI counts are ints.
    constexpr std::int64_t kPiece = std::int64_t{1} << 30;
    auto* base = static_cast<char*>(tensor.data_ptr());
    for (std::int64_t first = 0; first < tensor.numel(); first += kPiece) {
      const auto n = std::min(kPiece, tensor.numel() - first);
      MPI_Request request = MPI_REQUEST_NULL;
      LONGREC_MPI(MPI_Iallreduce(MPI_IN_PLACE, base + first * tensor.element_size(), static_cast<int>(n),
                                 mpi_type(tensor), MPI_SUM, comm_, &request));
      watch_->wait(request, call, collective_timeout(), tensor);
    }
  }

  torch::Tensor all_gather(const torch::Tensor& tensor) override {
    require_cpu(tensor, "all_gather");
    auto shape = tensor.sizes().vec();
    if (shape.empty()) shape.push_back(1);
    shape[0] *= topology_.world;
    auto out = torch::empty(shape, tensor.options());
    const int count = as_count(tensor.numel(), "all_gather");
    const auto call = watch_->next("all_gather", collective_label());
    MPI_Request request = MPI_REQUEST_NULL;
    LONGREC_MPI(MPI_Iallgather(tensor.data_ptr(), count, mpi_type(tensor), out.data_ptr(), count, mpi_type(tensor),
                               comm_, &request));
    watch_->wait(request, call, collective_timeout(), tensor, out);
    return out;
  }

  torch::Tensor all_to_all_v(const torch::Tensor& rows, const std::vector<std::int64_t>& send_counts,
                             std::vector<std::int64_t>& recv_counts) override {
    require_cpu(rows, "all_to_all_v");
    const auto row_size = check_all_to_all_counts(rows, send_counts, topology_.world);
    recv_counts = exchange_counts(send_counts);
    const auto layout =
        std::make_shared<const ExchangeLayout>(exchange_layout(rows, send_counts, recv_counts, row_size));
    auto out = torch::empty(layout->recv_shape, rows.options());
    const auto call = watch_->next("all_to_all_v", collective_label());
    MPI_Request request = MPI_REQUEST_NULL;
    LONGREC_MPI(MPI_Ialltoallv(rows.data_ptr(), layout->send_counts.data(), layout->send_offsets.data(), mpi_type(rows),
                               out.data_ptr(), layout->recv_counts.data(), layout->recv_offsets.data(), mpi_type(rows),
                               comm_, &request));
    watch_->wait(request, call, collective_timeout(), rows, out, layout);
    return out;
  }

  std::unique_ptr<PendingExchange> start_all_to_all_v(const torch::Tensor& rows,
                                                      const std::vector<std::int64_t>& send_counts) override {
    require_cpu(rows, "all_to_all_v");
    const auto row_size = check_all_to_all_counts(rows, send_counts, topology_.world);
    auto recv_counts = exchange_counts(send_counts);
    auto layout = std::make_shared<const ExchangeLayout>(exchange_layout(rows, send_counts, recv_counts, row_size));
    auto call = watch_->next("all_to_all_v", collective_label());
    return std::make_unique<MpiPendingExchange>(rows, std::move(recv_counts), std::move(layout), comm_, watch_,
                                                std::move(call), collective_timeout());
  }

  void broadcast(torch::Tensor& tensor, int root) override {
    require_cpu(tensor, "broadcast");
    const auto call = watch_->next("broadcast", collective_label());
    MPI_Request request = MPI_REQUEST_NULL;
    LONGREC_MPI(
        MPI_Ibcast(tensor.data_ptr(), as_count(tensor.numel(), "broadcast"), mpi_type(tensor), root, comm_, &request));
    watch_->wait(request, call, collective_timeout(), tensor);
  }

  void barrier() override {
    const auto call = watch_->next("barrier", collective_label());
    MPI_Request request = MPI_REQUEST_NULL;
    LONGREC_MPI(MPI_Ibarrier(comm_, &request));
    watch_->wait(request, call, collective_timeout());
  }

 private:
  // all_to_all_v's first half: every rank's count for this one (W integers).
  std::vector<std::int64_t> exchange_counts(const std::vector<std::int64_t>& send_counts) {
    const auto send = torch::tensor(send_counts, torch::kInt64);
    auto recv = torch::zeros_like(send);
    const auto call = watch_->next("all_to_all_v counts", collective_label());
    MPI_Request request = MPI_REQUEST_NULL;
    LONGREC_MPI(MPI_Ialltoall(send.data_ptr(), 1, MPI_INT64_T, recv.data_ptr(), 1, MPI_INT64_T, comm_, &request));
    watch_->wait(request, call, collective_timeout(), send, recv);
    return {recv.data_ptr<std::int64_t>(), recv.data_ptr<std::int64_t>() + recv.numel()};
  }

  Topology topology_;
  std::shared_ptr<detail::CollectiveWatch> watch_;
  MPI_Comm comm_ = MPI_COMM_NULL;
};

}  // namespace

namespace {

// An exchange that completed when it started (backends without a non-blocking all_to_all_v).
class CompletedExchange final : public PendingExchange {
 public:
  CompletedExchange(torch::Tensor rows, std::vector<std::int64_t> recv_counts) : rows_(std::move(rows)) {
    recv_counts_ = std::move(recv_counts);
  }
  torch::Tensor wait() override {
    if (!rows_.defined()) throw DistError("all_to_all_v: wait() called twice");
    return std::exchange(rows_, torch::Tensor());
  }

 private:
  torch::Tensor rows_;
};

}  // namespace

std::unique_ptr<PendingExchange> Communicator::start_all_to_all_v(const torch::Tensor& rows,
                                                                  const std::vector<std::int64_t>& send_counts) {
  std::vector<std::int64_t> recv_counts;
  auto out = all_to_all_v(rows, send_counts, recv_counts);
  return std::make_unique<CompletedExchange>(std::move(out), std::move(recv_counts));
}

void Communicator::set_collective_timeout(double seconds) {
  if (!std::isfinite(seconds) || seconds <= 0) {
    throw DistError(fmt::format("collective timeout: got {} s, expected a finite number of seconds > 0", seconds));
  }
  timeout_seconds_ = seconds;
}

std::int64_t check_all_to_all_counts(const torch::Tensor& rows, const std::vector<std::int64_t>& send_counts,
                                     int world) {
  const auto total = std::accumulate(send_counts.begin(), send_counts.end(), std::int64_t{0});
  if (send_counts.size() != static_cast<std::size_t>(world) || total != rows.size(0)) {
    throw DistError(fmt::format("all_to_all_v: {} send counts summing to {} for a world of {} and {} rows",
                                send_counts.size(), total, world, rows.size(0)));
  }
  std::int64_t row_size = 1;
  for (std::int64_t d = 1; d < rows.dim(); ++d) row_size *= rows.size(d);
  return row_size;
}

torch::Tensor sum_over_ranks(Communicator& comm, const torch::Tensor& tensor) {
  if (comm.world() == 1) return tensor;
  auto wire = tensor.to(comm.wire_device(tensor.device())).contiguous();
  if (wire.data_ptr() == tensor.data_ptr()) wire = wire.clone();  // never sum into the caller's tensor
  comm.all_reduce_sum(wire);
  return wire.to(tensor.device());
}

torch::Tensor all_gather_rows(Communicator& comm, const torch::Tensor& tensor, std::vector<std::int64_t>* counts) {
  const auto wire = comm.wire_device(tensor.device());
  const auto W = comm.world();
  auto own = torch::full({1}, tensor.size(0), torch::TensorOptions().dtype(torch::kInt64).device(wire));
  const auto gathered_counts = comm.all_gather(own).to(torch::kCPU);
  std::vector<std::int64_t> rows(gathered_counts.data_ptr<std::int64_t>(),
                                 gathered_counts.data_ptr<std::int64_t>() + W);
  if (counts != nullptr) *counts = rows;
  const auto longest = *std::max_element(rows.begin(), rows.end());
  auto shape = tensor.sizes().vec();
  shape[0] = longest;
  auto padded = torch::zeros(shape, tensor.options().device(wire));
  padded.slice(0, 0, tensor.size(0)).copy_(tensor);
  const auto all = comm.all_gather(padded);
  std::vector<torch::Tensor> parts;
  for (int r = 0; r < W; ++r)
    parts.push_back(all.slice(0, r * longest, r * longest + rows[static_cast<std::size_t>(r)]));
  return torch::cat(parts).to(tensor.device());
}

std::unique_ptr<Communicator> make_job_communicator(torch::Device device) {
  if (!launched_by_mpi()) return make_single_process_communicator();
  if (device.is_cuda()) {
    auto bootstrap = make_mpi_communicator();  // carries the ncclUniqueId only
    return make_nccl_communicator(*bootstrap);
  }
  return make_mpi_communicator();
}

std::unique_ptr<Communicator> make_single_process_communicator() {
  return std::make_unique<SingleProcessCommunicator>();
}

std::unique_ptr<Communicator> make_mpi_communicator() {
  return std::make_unique<MpiCommunicator>(MpiRuntime::start().topology());
}

}  // namespace longrec::distributed
