// `longrec bench train`: training throughput and MFU of a configuration,
// measured on its dataset. Torch-free interface for the CLI.
#pragma once

#include <cstdint>
#include <string>

#include "longrec/data/loader.h"
#include "longrec/model/model_config.h"
#include "longrec/train/train_config.h"

namespace longrec::bench {

struct TrainBenchmark {
  std::string model;
  std::int64_t steps = 0;
  double seconds = 0;
  double samples_per_s = 0, tokens_per_s = 0;
  double flops_per_s = 0;       // achieved model FLOP/s (forward + backward)
  double peak_flops_per_s = 0;  // matmul peak measured in the same run (x ranks)
  double flops_per_sample = 0;  // training FLOPs per sample at the measured widths
  int world = 1, rank = 0;      // ranks of the job (mpirun); rank 0 prints
  double comm_ms_per_step = 0;  // time in collectives per step (this rank)
  double mfu() const { return flops_per_s / peak_flops_per_s; }
};

// Times `steps` training steps after `warmup` untimed ones; under mpirun the
// ranks train together (global batch, sharded item table) and the figures are
// the job's.
TrainBenchmark benchmark_training(const train::TrainConfig& train, const model::ModelConfig& model,
                                  const data::LoaderConfig& data, int steps, int warmup);

}  // namespace longrec::bench
