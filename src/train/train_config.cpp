#include "longrec/train/train_config.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "longrec/core/config.h"
#include "longrec/train/model_selection.h"

namespace longrec::train {

namespace {

// Seconds: finite (NaN and infinity refused), within [lo, hi].
check::Validator<double> finite_seconds(double lo, double hi) {
  return [lo, hi](const std::string& key, const double& v) {
    if (!std::isfinite(v) || v < lo || v > hi) {
      throw ConfigError(key, fmt::format("got {}, expected a number of seconds in [{}, {}]", v, lo, hi));
    }
  };
}

// select_by and early_stop_patience together: patience needs a metric, a
// metric needs periodic evaluations.
void check_selection_keys(const TrainConfig& c) {
  // Checked against eval.cutoffs here, once every key is parsed.
  const bool selecting = parse_select_by(c.select_by, c.eval_protocol.resolve().cutoffs).has_value();
  if (c.early_stop_patience > 0 && !selecting) {
    throw ConfigError("train.early_stop_patience",
                      fmt::format("got {}, but train.select_by is none: early stopping needs a metric to watch "
                                  "(e.g. train.select_by=valid.ndcg@10)",
                                  c.early_stop_patience));
  }
  if (selecting && c.eval_every == 0) {
    throw ConfigError("train.select_by",
                      fmt::format("got '{}', but train.eval_every = 0 evaluates only at the end: selection needs "
                                  "periodic evaluations (train.eval_every >= 1 epoch)",
                                  c.select_by));
  }
}

}  // namespace

void register_train_options(OptionRegistry& r, TrainConfig& c) {
  r.add("train", "dataset", &c.dataset, "history store directory (from `longrec prepare` or `longrec synth`)");
  r.add("train", "run_dir", &c.run_dir, "run directory: logs, metrics.jsonl, checkpoints");
  r.add("train", "epochs", &c.epochs, "training epochs", check::in_range(1, 1000000));
  r.add("train", "max_steps", &c.max_steps, "stop after this many steps (0 = run all epochs)",
        check::in_range<std::int64_t>(0, check::kMaxCount));
  r.add("train", "lr", &c.lr, "dense AdamW learning rate", check::in_range(0.0, 10.0));
  r.add("train", "beta1", &c.beta1, "AdamW beta1", check::in_range(0.0, 0.9999));
  r.add("train", "beta2", &c.beta2, "AdamW beta2", check::in_range(0.0, 0.99999));
  r.add("train", "weight_decay", &c.weight_decay, "AdamW weight decay", check::in_range(0.0, 1.0));
  r.add("train", "warmup_steps", &c.warmup_steps, "linear warm-up steps",
        check::in_range<std::int64_t>(0, check::kMaxCount));
  r.add("train", "schedule", &c.schedule, "learning-rate schedule after warm-up: constant | cosine",
        check::one_of({"constant", "cosine"}));
  r.add("train", "min_lr_ratio", &c.min_lr_ratio, "cosine floor as a fraction of lr", check::in_range(0.0, 1.0));
  r.add("train", "clip_grad_norm", &c.clip_grad_norm, "clip the dense gradient norm (0 = off)", check::at_least(0.0));
  r.add("train", "sparse_optimizer", &c.sparse_optimizer, "item-embedding optimizer: rowwise_adagrad | adam",
        check::one_of({"rowwise_adagrad", "adam"}));
  r.add("train", "sparse_lr", &c.sparse_lr, "item-embedding learning rate", check::in_range(0.0, 10.0));
  r.add("train", "log_every", &c.log_every, "steps between log lines",
        check::in_range<std::int64_t>(1, check::kMaxCount));
  r.add("train", "eval_every", &c.eval_every, "epochs between evaluations (0 = at the end only)",
        check::in_range(0, 1000000));
  r.flag("train", "final_eval", &c.final_eval,
         "evaluate on eval_part when training ends (`longrec sweep run` turns it off: it evaluates valid and test)");
  r.add("train", "eval_part", &c.eval_part, "split part evaluated during training: valid | test",
        check::one_of({"valid", "test"}));
  r.add("train", "eval_long_history", &c.eval_long_history,
        "also report metrics of users whose history is longer than this many events (0 = off)",
        check::in_range<std::int64_t>(0, check::kMaxCount));
  r.add("train", "select_by", &c.select_by,
        fmt::format("keep the best checkpoint by this validation metric (at every periodic evaluation) and report "
                    "eval_part's metrics at it: none | valid.<metric>, <metric> one of {} at the default eval.cutoffs "
                    "(needs data.split=last2)",
                    fmt::join(selectable_metrics(), ", ")));
  r.add("train", "early_stop_patience", &c.early_stop_patience,
        "stop after this many periodic evaluations in a row without improvement of select_by (0 = off)",
        check::in_range(0, 1000000));
  r.add("train", "threads", &c.threads, "intra-op threads per process (0 = all cores)",
        check::in_range(0, check::kMaxThreads));
  r.add("train", "device", &c.device, "auto | cpu | cuda", check::one_of({"auto", "cpu", "cuda"}));
  r.flag("train", "bf16", &c.bf16, "bf16 autocast on GPU");
  r.flag("train", "route_ahead", &c.route_ahead,
         "several ranks: exchange the next step's item ids while this step computes");
  r.add("train", "collective_timeout", &c.collective_timeout,
        "several ranks: seconds a collective may wait for the others before the job ends, naming the collective "
        "and the ranks that did not answer (must exceed the longest pause of one rank alone, e.g. rank 0 writing "
        "a checkpoint)",
        finite_seconds(1, 604800));
  r.add("train", "startup_collective_timeout", &c.startup_collective_timeout,
        "the same until this process's first step completes (loading, resuming, warm-up); the larger of the two "
        "applies",
        finite_seconds(1, 604800));
  r.add("train", "ckpt_every", &c.ckpt_every, "steps between checkpoints (0 = at the end only)",
        check::in_range<std::int64_t>(0, check::kMaxCount));
  r.add("train", "keep_ckpts", &c.keep_ckpts, "checkpoints kept (newest)", check::in_range(1, 10000));
  r.add("train", "resume", &c.resume, "resume: '' (fresh), auto (newest complete checkpoint of run_dir) or a path");
  eval::register_protocol_options(r, c.eval_protocol);
  r.constraint([&c] {
    if (c.dataset.empty()) throw ConfigError("train.dataset", "a dataset directory is required");
  });
  r.constraint([&c] { check_selection_keys(c); });
}

void check_selection(const TrainConfig& train, const data::LoaderConfig& data) {
  check_selection_keys(train);
  if (!parse_select_by(train.select_by, train.eval_protocol.resolve().cutoffs) || data.split != "loo") return;
  throw ConfigError("train.select_by",
                    fmt::format("got '{}' with data.split=loo: under loo the validation target is the test target "
                                "(each user's last event), so the test figure would be chosen on the test set; use "
                                "data.split=last2 (validation on the second-to-last event)",
                                train.select_by));
}

model::StepMemoryEstimate check_training_memory(const TrainConfig& train, const model::ModelConfig& model,
                                                const data::LoaderConfig& data, int world, int local_ranks,
                                                std::int64_t num_items) {
  model::StepShape shape;
  shape.batch_size = data.batch_size;
  shape.world = world;
  shape.window = data.max_len;
  shape.num_items = num_items;
  shape.adam_items = train.sparse_optimizer == "adam";
  const auto estimate = model::estimate_step_memory(model, shape);
  local_ranks = std::max(local_ranks, 1);
  model::check_step_memory(
      estimate, model::machine_memory_bytes() / static_cast<std::uint64_t>(local_ranks),
      local_ranks == 1 ? "this machine" : fmt::format("each of the {} ranks on this node", local_ranks));
  return estimate;
}

}  // namespace longrec::train
