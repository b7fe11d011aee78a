#include "stop_signals.h"

#include <torch/torch.h>

#include <csignal>

#include "longrec/distributed/communicator.h"

namespace longrec::train {

namespace {
// Set by the handler, read by the loop.
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void request_stop(int signal) { g_stop_signal = signal; }
}  // namespace

StopSignals::StopSignals() {
  g_stop_signal = 0;
  previous_usr1_ = std::signal(SIGUSR1, request_stop);
  previous_term_ = std::signal(SIGTERM, request_stop);
}

StopSignals::~StopSignals() {
  std::signal(SIGUSR1, previous_usr1_);
  std::signal(SIGTERM, previous_term_);
}

bool StopSignals::requested(distributed::Communicator& comm) const {
  distributed::CollectiveLabel label(comm, "stop signals");
  return distributed::sum_over_ranks(comm, torch::tensor({static_cast<std::int64_t>(g_stop_signal)}, torch::kInt64))
             .item<std::int64_t>() != 0;
}

int StopSignals::received() const { return static_cast<int>(g_stop_signal); }

}  // namespace longrec::train
