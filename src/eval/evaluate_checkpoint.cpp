#include "longrec/eval/evaluate_checkpoint.h"

#include <ATen/Parallel.h>

#include <chrono>
#include <sstream>
#include <string>

#include "longrec/ckpt/checkpoint.h"
#include "longrec/core/error.h"
#include "longrec/data/history_store.h"
#include "longrec/eval/retrieval.h"
#include "longrec/model/sequential_recommender.h"
#include "longrec/core/metrics_log.h"

namespace longrec::eval {

namespace {

// The value of `key` in `[section]` of INI text ("" when absent).
std::string ini_value(const std::string& ini, const std::string& section, const std::string& key) {
  std::istringstream in(ini);
  std::string line, current;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#' || line[first] == ';') continue;
    if (line[first] == '[') {
      current = line.substr(first + 1, line.find(']') - first - 1);
      continue;
    }
    const auto eq = line.find('=');
    if (current != section || eq == std::string::npos) continue;
    auto name = line.substr(first, eq - first);
    name.erase(name.find_last_not_of(" \t") + 1);
    if (name != key) continue;
    auto value = line.substr(eq + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    value.erase(value.find_last_not_of(" \t\r") + 1);
    return value;
  }
  return "";
}

}  // namespace

EvalResult evaluate_checkpoint(const EvalOptions& options, const data::LoaderConfig& data_config) {
  const auto start = std::chrono::steady_clock::now();
  if (options.threads > 0) at::set_num_threads(options.threads);
  const auto checkpoint = ckpt::resolve_checkpoint(options.checkpoint, options.checkpoint);
  if (checkpoint.empty()) throw DataError(fmt::format("{}: no complete checkpoint found", options.checkpoint));
  const auto manifest = ckpt::read_manifest(checkpoint);
  const std::string dataset = options.dataset.empty() ? manifest.dataset : options.dataset;
  auto loader_config = data_config;
  if (options.window_from_checkpoint) {
    // Recorded in the manifest; older checkpoints have it in their config text only.
    const auto from_ini = ini_value(manifest.config_ini, "data", "max_len");
    if (manifest.history_window > 0) {
      loader_config.max_len = manifest.history_window;
    } else if (!from_ini.empty()) {
      loader_config.max_len = std::stoi(from_ini);
    }
  }
  if (options.split_from_checkpoint) {
    const auto split = ini_value(manifest.config_ini, "data", "split");
    if (!split.empty()) loader_config.split = split;  // (checked by the loader: loo | last2)
  }
  auto protocol_options = options.protocol;
  for (const auto& [key, value] : {std::pair{"cutoffs", &protocol_options.cutoffs},
                                   std::pair{"exclude_history", &protocol_options.exclude_history},
                                   std::pair{"target_in_history", &protocol_options.target_in_history}}) {
    if (!options.protocol_from_checkpoint.contains(std::string("eval.") + key)) continue;
    // Checkpoints written before the [eval] keys have none: the defaults, as they were evaluated.
    const auto saved = ini_value(manifest.config_ini, "eval", key);
    if (!saved.empty()) *value = saved;
  }
  const auto protocol = protocol_options.resolve();
  loader_config.max_len = static_cast<int>(std::min<std::int64_t>(
      loader_config.max_len, model::longest_history(manifest.model.max_len, manifest.model.personalization)));
  data::HistoryLoader loader(dataset, loader_config, data::parse_split_part(options.part));
  ckpt::check_compatible(manifest, manifest.model, loader.num_items(), checkpoint);

  const torch::Device device = options.device == "cuda" || (options.device == "auto" && torch::cuda::is_available())
                                   ? torch::kCUDA
                                   : torch::kCPU;
  model::SequentialRecommender model(manifest.model);
  model.to(device);
  const auto items = model::make_item_vectors(model, manifest.num_items, dataset, device);
  ckpt::load_checkpoint(checkpoint, manifest, model, nullptr, *items);
  EvaluateOptions evaluate_options;
  evaluate_options.long_history = options.long_history;
  evaluate_options.keep_user_ranks = !options.ranks.empty();
  evaluate_options.protocol = protocol;
  evaluate_options.progress_label = fmt::format("eval {}", options.part);
  evaluate_options.progress_log_seconds = options.progress_log_seconds;
  const auto evaluation = evaluate(model, *items, loader, device, evaluate_options);
  if (!options.ranks.empty()) {
    // Each target's events in the whole dataset (held-out ones included): the cold-item slice.
    const auto counts = data::HistoryStoreReader(dataset).item_counts();
    auto rows = evaluation.user_ranks;
    for (auto& row : rows) {
      if (row.target >= 1 && row.target <= static_cast<std::int64_t>(counts.size())) {
        row.target_events = counts[static_cast<std::size_t>(row.target - 1)];
      }
    }
    write_user_ranks(options.ranks, rows);
  }

  EvalResult result;
  result.metrics = evaluation.values();
  result.users = evaluation.all.count();
  result.checkpoint = checkpoint.string();
  result.split = loader_config.split;
  result.protocol = protocol;
  result.items = manifest.num_items;
  result.repeat_targets = evaluation.repeat_targets;
  result.skipped_users = evaluation.skipped_users;
  result.users_without_target = loader.users_without_target();
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
