// What the training loop reports: one line per log interval on rank 0 (step,
// epoch, loss, lr, gradient norm, samples/s, tokens/s, MFU, communication,
// ETA) with a progress bar between lines, and the same figures in every
// rank's metrics stream (the step figures are the global batch's, the
// communication time is the rank's own).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "longrec/core/log.h"
#include "longrec/core/metrics_log.h"
#include "longrec/train/train_config.h"
#include "longrec/train/training_session.h"

namespace longrec::train {

class TrainingLog {
 public:
  // first_step: where this run starts (> 0 after a resume); peak_flops: the
  // matmul peak of one rank; world: ranks (MFU is against all of them).
  TrainingLog(const TrainConfig& config, const std::filesystem::path& metrics_path, std::int64_t planned,
              std::int64_t first_step, double peak_flops, int world);

  // After every step: accumulates, and at every log_every-th step (and the
  // last) prints a line and writes a "train" record.
  void step(std::int64_t step, std::int64_t epoch, const StepStats& stats, double lr);
  // An "eval" record.
  void eval(const std::map<std::string, double>& values) { metrics_.write("eval", values); }
  void finish_progress() { progress_.finish(); }

  double last_mean_loss() const { return last_mean_loss_; }
  double elapsed_seconds() const;

 private:
  using Clock = std::chrono::steady_clock;
  TrainConfig config_;
  std::int64_t planned_, first_step_;
  double peak_flops_;
  int world_;
  MetricsLog metrics_;
  log::ProgressBar progress_;
  Clock::time_point start_, interval_start_;
  double interval_loss_ = 0, interval_flops_ = 0, interval_comm_ = 0, last_mean_loss_ = 0;
  std::int64_t interval_steps_ = 0, interval_samples_ = 0, interval_tokens_ = 0;
};

// "12m34s", "1h02m".
std::string format_duration(double seconds);

}  // namespace longrec::train
