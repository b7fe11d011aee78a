#include "training_log.h"

namespace longrec::train {

std::string format_duration(double seconds) {
  const auto s = static_cast<std::int64_t>(seconds);
  return s >= 3600 ? fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60) : fmt::format("{}m{:02d}s", s / 60, s % 60);
}

TrainingLog::TrainingLog(const TrainConfig& config, const std::filesystem::path& metrics_path, std::int64_t planned,
                         std::int64_t first_step, double peak_flops, int world)
    : config_(config),
      planned_(planned),
      first_step_(first_step),
      peak_flops_(peak_flops),
      world_(world),
      metrics_(metrics_path),
      progress_("train", planned),
      start_(Clock::now()),
      interval_start_(start_) {}

double TrainingLog::elapsed_seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

void TrainingLog::step(std::int64_t step, std::int64_t epoch, const StepStats& stats, double lr) {
  interval_loss_ += stats.loss;
  ++interval_steps_;
  interval_samples_ += stats.samples;
  interval_tokens_ += stats.tokens;
  interval_flops_ += stats.flops;
  interval_comm_ += stats.comm_seconds;
  progress_.update(step);
  if (step % config_.log_every != 0 && step != planned_) return;

  const double seconds = std::chrono::duration<double>(Clock::now() - interval_start_).count();
  const double eta = elapsed_seconds() / static_cast<double>(step - first_step_) * static_cast<double>(planned_ - step);
  const double mean_loss = interval_loss_ / static_cast<double>(interval_steps_);
  progress_.finish();
  // MFU against every rank's peak (each rank measured its own; rank 0's stands for all).
  const double mfu = interval_flops_ / seconds / (peak_flops_ * world_);
  const double comm_ms = 1e3 * interval_comm_ / static_cast<double>(interval_steps_);
  log::info(
      "step {:>7} epoch {:>3} loss {:.4f} lr {:.2e} grad {:.3f} | {:.0f} samples/s {} tokens/s MFU {:.1f}%{} | "
      "ETA {}",
      step, epoch, mean_loss, lr, stats.grad_norm, static_cast<double>(interval_samples_) / seconds,
      log::human_count(static_cast<double>(interval_tokens_) / seconds), 100.0 * mfu,
      world_ > 1 ? fmt::format(" comm {:.1f} ms/step", comm_ms) : std::string(), format_duration(eta));
  progress_ = log::ProgressBar("train", planned_);
  metrics_.write("train", {{"step", static_cast<double>(step)},
                           {"epoch", static_cast<double>(epoch)},
                           {"loss", mean_loss},
                           {"lr", lr},
                           {"grad_norm", stats.grad_norm},
                           {"samples_per_s", static_cast<double>(interval_samples_) / seconds},
                           {"tokens_per_s", static_cast<double>(interval_tokens_) / seconds},
                           {"mfu", mfu},
                           {"comm_ms_per_step", comm_ms},
                           // The interval's totals: `sweep collect` sums them (a resumed run's
                           // repeated steps replace the intervals they overlap).
                           {"steps", static_cast<double>(interval_steps_)},
                           {"samples", static_cast<double>(interval_samples_)},
                           {"tokens", static_cast<double>(interval_tokens_)},
                           {"flops", interval_flops_},
                           {"seconds", seconds}});
  last_mean_loss_ = mean_loss;
  interval_loss_ = interval_flops_ = interval_comm_ = 0;
  interval_steps_ = interval_samples_ = interval_tokens_ = 0;
  interval_start_ = Clock::now();
}

}  // namespace longrec::train
