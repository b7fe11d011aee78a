#include "longrec/eval/evaluate_checkpoint.h"

#include <ATen/Parallel.h>

#include <chrono>

#include "longrec/ckpt/checkpoint.h"
#include "longrec/core/error.h"
#include "longrec/eval/retrieval.h"
#include "longrec/model/sequential_recommender.h"
#include "longrec/core/metrics_log.h"

namespace longrec::eval {

EvalResult evaluate_checkpoint(const EvalOptions& options, const data::LoaderConfig& data_config) {
  const auto start = std::chrono::steady_clock::now();
  if (options.threads > 0) at::set_num_threads(options.threads);
  const auto checkpoint = ckpt::resolve_checkpoint(options.checkpoint, options.checkpoint);
  if (checkpoint.empty()) throw DataError(fmt::format("{}: no complete checkpoint found", options.checkpoint));
  const auto manifest = ckpt::read_manifest(checkpoint);
  const std::string dataset = options.dataset.empty() ? manifest.dataset : options.dataset;
  auto loader_config = data_config;
  loader_config.max_len = static_cast<int>(std::min<std::int64_t>(
      loader_config.max_len, model::longest_history(manifest.model.max_len, manifest.model.personalization)));
  data::HistoryLoader loader(dataset, loader_config, data::parse_split_part(options.part));
  ckpt::check_compatible(manifest, manifest.model, loader.num_items(), checkpoint);

  const torch::Device device =
      options.device == "cuda" || (options.device == "auto" && torch::cuda::is_available()) ? torch::kCUDA
                                                                                             : torch::kCPU;
  model::SequentialRecommender model(manifest.model);
  model.to(device);
  model::LocalItemEmbedding items(manifest.num_items, manifest.model.dim, {}, 0, device);
  ckpt::load_checkpoint(checkpoint, manifest, model, nullptr, items);
  const auto evaluation = evaluate(model, items, loader, device, options.long_history);

  EvalResult result;
  result.metrics = evaluation.values();
  result.users = evaluation.all.count();
  result.checkpoint = checkpoint.string();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!options.output.empty()) {
    auto fields = result.metrics;
    fields["step"] = static_cast<double>(manifest.trainer.step);
    fields["users"] = static_cast<double>(result.users);
    MetricsLog(options.output).write("eval", fields);
  }
  return result;
}

}  // namespace longrec::eval
