// `longrec eval`: rank held-out items with a checkpoint.
#include <fmt/format.h>

#include "commands.h"
#include "longrec/core/config.h"
#include "longrec/eval/evaluate_checkpoint.h"
#include "longrec/eval/protocol.h"
#include "longrec/eval/ranking_metrics.h"

namespace longrec::cli {

int run_eval(int argc, const char* const* argv) {
  eval::EvalOptions options;
  data::LoaderConfig data;
  data.batch_size = 256;
  OptionRegistry r(
      "eval",
      "Evaluates a checkpoint by exact full ranking over all items (the user's history excluded):\n"
      "HR@K and NDCG@K for each K of eval.cutoffs (default 1,5,10,20,50,200), MRR. The [eval] protocol\n"
      "keys not given (cutoffs, exclude_history, target_in_history) are the checkpoint's training values.\n"
      "Example: longrec eval --checkpoint runs/ml-1m-hstu/ckpt/LATEST --part test",
      "eval");
  r.add("eval", "checkpoint", &options.checkpoint, "checkpoint: step directory, LATEST file or run directory");
  r.add("eval", "dataset", &options.dataset, "history store (default: the one the checkpoint was trained on)");
  r.add("eval", "part", &options.part, "valid | test", check::one_of({"valid", "test"}));
  r.add("eval", "threads", &options.threads, "intra-op threads (0 = all cores)",
        check::in_range(0, check::kMaxThreads));
  r.add("eval", "device", &options.device, "auto | cpu | cuda", check::one_of({"auto", "cpu", "cuda"}));
  r.add("eval", "output", &options.output, "append the metrics to this JSONL file");
  r.add("eval", "long_history", &options.long_history,
        "also report users whose history is longer than this many events (0 = off)",
        check::in_range<std::int64_t>(0, check::kMaxCount));
  r.add("eval", "ranks", &options.ranks,
        "write every user's rank to this TSV (user, history_events, rank) for `longrec compare`",
        check::writable_path());
  r.add("eval", "progress_seconds", &options.progress_log_seconds,
        "when stderr is not a terminal: a progress line (users done, users/s, ETA) per tenth of the users or this "
        "often, whichever is first (0 = none)",
        check::in_range(0.0, 86400.0));
  eval::register_protocol_options(r, options.protocol);
  data::register_loader_options(r, data);
  r.constraint([&] {
    if (options.checkpoint.empty()) throw ConfigError("eval.checkpoint", "a checkpoint is required");
  });
  if (!r.parse(argc, argv)) return 0;
  for (const auto& row : r.resolved()) {
    // Unless given, the history window the checkpoint was trained with.
    if (row.key == "data.max_len" && row.source == "default") options.window_from_checkpoint = true;
    if (row.key == "data.split" && row.source == "default") options.split_from_checkpoint = true;
    if (row.key.rfind("eval.", 0) == 0 && row.source == "default") options.protocol_from_checkpoint.insert(row.key);
  }
  const auto result = eval::evaluate_checkpoint(options, data);
  std::map<std::string, double> all, slice;
  const auto prefix = fmt::format("hist>{}/", options.long_history);
  for (const auto& [key, value] : result.metrics) {
    if (key.rfind(prefix, 0) == 0) {
      if (key != prefix + "users") slice[key.substr(prefix.size())] = value;
    } else {
      all[key] = value;
    }
  }
  fmt::print("checkpoint {}\n{} users, {} split ({} protocol), {:.1f} s\n{}\n", result.checkpoint, result.users,
             options.part, result.split, result.seconds, eval::format_metrics(all));
  fmt::print("{} items ranked, {}\n", result.items, eval::describe(result.protocol));
  if (result.repeat_targets > 0) {
    fmt::print(
        "{} users' target is among their excluded events (a repeat): {}\n", result.repeat_targets,
        result.protocol.target_in_history == eval::RepeatTarget::Skip
            ? "not scored"
            : (result.protocol.target_in_history == eval::RepeatTarget::Miss ? "scored as misses" : "ranked as usual"));
  }
  if (result.users_without_target > 0) {
    fmt::print("{} users not scored: too short for the {} split's {} target (fewer than {} events)\n",
               result.users_without_target, result.split, options.part,
               options.part == "valid" && result.split == "last2" ? 3 : 2);
  }
  if (options.long_history > 0) {
    fmt::print("users with > {} events ({}):\n{}\n", options.long_history,
               static_cast<std::int64_t>(result.metrics.at(prefix + "users")), eval::format_metrics(slice));
  }
  if (!options.ranks.empty()) fmt::print("per-user ranks: {}\n", options.ranks);
  return 0;
}

}  // namespace longrec::cli
