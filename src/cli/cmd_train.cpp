// `longrec train`: train a sequential recommender on a history store.
#include "commands.h"
#include "longrec/core/config.h"
#include "longrec/core/log.h"
#include "longrec/data/loader.h"
#include "longrec/model/model_config.h"
#include "longrec/train/trainer.h"

namespace longrec::cli {

int run_train(int argc, const char* const* argv) {
  train::TrainConfig train;
  model::ModelConfig model;
  data::LoaderConfig data;
  OptionRegistry r("train",
                   "Trains HSTU or SASRec with sampled softmax on a history store; evaluates periodically and\n"
                   "checkpoints into the run directory.\n"
                   "Example: longrec train --config configs/ml-1m/hstu.ini --dataset data/ml-1m",
                   "train");
  train::register_train_options(r, train);
  model::register_model_options(r, model);
  data::register_loader_options(r, data);
  r.constraint([&] { train::check_selection(train, data); });
  if (!r.parse(argc, argv)) return 0;
  const auto result = train::run_training(train, model, data, r.table(), r.ini());
  // 75 (EX_TEMPFAIL): stopped early with a checkpoint; launchers requeue and resume.
  if (result.stopped_by_signal != 0) return 75;
  log::info("trained {} steps ({} epochs) in {:.0f} s; final loss {:.4f}", result.steps, result.epochs, result.seconds,
            result.final_loss);
  if (result.best_step >= 0) {
    log::info("best checkpoint by {}: step {} (epoch {}), {:.6f}{}; {}/ckpt/BEST names it", result.selected_by,
              result.best_step, result.best_epoch, result.best_value, result.stopped_early ? "; stopped early" : "",
              train.run_dir);
  }
  return 0;
}

}  // namespace longrec::cli
