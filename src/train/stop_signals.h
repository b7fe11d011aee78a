// SIGUSR1 (Slurm's warning before the time limit) or SIGTERM during
// training: the loop finishes its step, checkpoints and stops; the ranks
// agree on stopping (one may get the signal before the others).
#pragma once

namespace longrec::distributed {
class Communicator;
}

namespace longrec::train {

// Installs the handlers for one training run and puts the old ones back after.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // Collective: true on every rank when any rank received a signal.
  bool requested(distributed::Communicator& comm) const;
  // The signal this process received (0: none).
  int received() const;

 private:
  void (*previous_usr1_)(int);
  void (*previous_term_)(int);
};

}  // namespace longrec::train
