#include "longrec/bench/train_benchmark.h"

#include <ATen/Parallel.h>

#include <chrono>

#include "longrec/core/error.h"
#include "longrec/distributed/communicator.h"
#include "longrec/distributed/runtime.h"
#include "longrec/train/peak_flops.h"
#include "longrec/train/training_session.h"

namespace longrec::bench {

using train::measure_matmul_peak_flops;
using train::pick_device;
using train::TrainConfig;
using train::TrainingSession;

TrainBenchmark benchmark_training(const TrainConfig& train, const model::ModelConfig& model_config,
                                  const data::LoaderConfig& data_config, int steps, int warmup) {
  model::check_model_fits_history(model_config.max_len, model_config.personalization, data_config.max_len);
  const distributed::Topology topology =
      distributed::launched_by_mpi() ? distributed::MpiRuntime::start().topology() : distributed::Topology{};
  longrec::train::check_training_memory(train, model_config, data_config, topology.world, topology.local_world, 0);
  if (train.threads > 0) at::set_num_threads(train.threads);
  const auto device = pick_device(train.device, distributed::job_local_rank());
  // Under mpirun: every rank times its share of the same global batches.
  auto comm = distributed::make_job_communicator(device);
  data::HistoryLoader loader(train.dataset, data_config, data::SplitPart::Train, comm->rank(), comm->world());
  // hllm: the item LLM over the store's item texts (its FLOPs counted in the step's).
  auto config = model_config;
  std::shared_ptr<model::ItemTextInputs> item_texts;
  if (config.backbone == "hllm") {
    model::apply_item_pretrained_sizes(config);
    item_texts = model::prepare_item_texts(config, train.dataset);
  }
  longrec::train::check_training_memory(train, config, data_config, comm->world(), comm->topology().local_world,
                                        loader.num_items());
  TrainingSession session(train, config, loader.num_items(), device, comm.get(), item_texts);
  TrainBenchmark result;
  result.world = comm->world();
  result.rank = comm->rank();
  result.model = model_config.describe();
  result.peak_flops_per_s = measure_matmul_peak_flops(device);

  std::int64_t step = 0;
  const auto next_batch = [&] {
    auto batch = loader.next();
    if (!batch) batch = loader.next();  // wrap around an epoch
    if (!batch) throw DataError(fmt::format("{}: no training samples", train.dataset));
    return *batch;
  };
  for (int i = 0; i < warmup; ++i) session.step(next_batch(), step++, 1.0);
  double flops = 0, comm_seconds = 0;
  std::int64_t samples = 0, tokens = 0;
  // Batches are built ahead by the loader thread; fetch them outside the timed region.
  std::vector<data::Batch> batches;
  for (int i = 0; i < steps; ++i) batches.push_back(next_batch());
  if (device.is_cuda()) torch::cuda::synchronize();
  comm->barrier();
  const auto start = std::chrono::steady_clock::now();
  for (const auto& batch : batches) {
    const auto stats = session.step(batch, step++, 1.0);
    flops += stats.flops;
    samples += stats.samples;
    tokens += stats.tokens;
    comm_seconds += stats.comm_seconds;
  }
  if (device.is_cuda()) torch::cuda::synchronize();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.steps = steps;
  result.samples_per_s = static_cast<double>(samples) / result.seconds;
  result.tokens_per_s = static_cast<double>(tokens) / result.seconds;
  result.flops_per_s = flops / result.seconds;
  result.flops_per_sample = flops / static_cast<double>(std::max<std::int64_t>(1, samples));
  // MFU against every rank's peak; the communication time is rank 0's.
  result.peak_flops_per_s *= result.world;
  result.comm_ms_per_step = 1e3 * comm_seconds / steps;
  return result;
}

}  // namespace longrec::bench
