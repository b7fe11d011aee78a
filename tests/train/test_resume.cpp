#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>

#include "longrec/ckpt/checkpoint.h"
#include "longrec/core/error.h"
#include "longrec/data/loader.h"
#include "longrec/data/synth.h"
#include "longrec/eval/evaluate_checkpoint.h"
#include "longrec/train/trainer.h"
#include "support/synthetic_store.h"
#include "support/test_support.h"

namespace longrec::train {

namespace {

struct Setup {
  TrainConfig train;
  model::ModelConfig model;
  data::LoaderConfig data;
};

Setup small_setup(const std::filesystem::path& dataset, const std::filesystem::path& run_dir) {
  Setup s;
  s.train.dataset = dataset.string();
  s.train.run_dir = run_dir.string();
  s.train.epochs = 3;
  s.train.log_every = 1;
  s.train.eval_every = 0;
  s.train.threads = 1;
  s.train.ckpt_every = 5;
  s.train.sparse_optimizer = "adam";
  s.train.sparse_lr = 1e-3;
  s.model.dim = 16;
  s.model.blocks = 1;
  s.model.heads = 2;
  s.model.max_len = 24;
  s.model.num_negatives = 16;
  s.data.batch_size = 16;
  s.data.max_len = 24;
  s.data.shuffle_users = 64;
  s.data.read_users = 16;
  return s;
}

std::filesystem::path make_dataset(const std::filesystem::path& dir) {
  return testing::make_synthetic_store(dir / "synth", 120, 200, 10, 30);
}

std::map<std::int64_t, double> train_losses(const std::filesystem::path& run_dir) {
  std::map<std::int64_t, double> losses;
  std::ifstream in(run_dir / "metrics-rank-00000.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("kind") == "train") losses[static_cast<std::int64_t>(j.at("step").get<double>())] = j.at("loss");
  }
  return losses;
}

TrainResult run(const Setup& s) { return run_training(s.train, s.model, s.data, "", ""); }

// The "eval" records of a run, in order.
std::vector<nlohmann::json> eval_records(const std::filesystem::path& run_dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run_dir / "metrics-rank-00000.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.at("kind") == "eval") out.push_back(j);
  }
  return out;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string text;
  std::getline(in, text);
  return text;
}

// Selection by valid.ndcg@10 at every epoch's end, under last2.
Setup selecting_setup(const std::filesystem::path& dataset, const std::filesystem::path& run_dir) {
  auto s = small_setup(dataset, run_dir);
  s.data.split = "last2";
  s.train.select_by = "valid.ndcg@10";
  s.train.eval_every = 1;
  s.train.epochs = 8;
  s.train.ckpt_every = 4;
  s.train.keep_ckpts = 1;
  s.train.lr = 1e-2;
  s.train.sparse_lr = 1e-2;
  return s;
}

}  // namespace

TEST(Resume, ContinuesWithTheSameLossesAsAnUninterruptedRun) {
  testing::ScratchDir dir;
  const auto dataset = make_dataset(dir.path());
  auto whole = small_setup(dataset, dir / "whole");
  whole.train.max_steps = 12;
  run(whole);
  const auto reference = train_losses(dir / "whole");
  ASSERT_EQ(reference.size(), 12u);

  auto first = small_setup(dataset, dir / "split");
  first.train.max_steps = 7;  // stops mid-epoch, between checkpoints
  run(first);
  auto second = small_setup(dataset, dir / "split");
  second.train.max_steps = 12;
  second.train.resume = "auto";
  run(second);
  const auto resumed = train_losses(dir / "split");
  for (std::int64_t step = 1; step <= 12; ++step) {
    ASSERT_TRUE(resumed.contains(step)) << "step " << step;
    EXPECT_DOUBLE_EQ(resumed.at(step), reference.at(step)) << "step " << step;
  }
}

TEST(Checkpoint, KeepsTheNewestAndRefusesCorruptOrForeignOnes) {
  testing::ScratchDir dir;
  const auto dataset = make_dataset(dir.path());
  auto s = small_setup(dataset, dir / "run");
  s.train.max_steps = 20;
  s.train.keep_ckpts = 2;
  run(s);
  const auto root = dir / "run" / "ckpt";
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(root)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"LATEST", "step-000000015", "step-000000020"}));
  const auto latest = ckpt::resolve_checkpoint(dir / "run", "auto");
  EXPECT_EQ(latest.filename(), "step-000000020");

  // `longrec eval` on it: every user with a held-out event is ranked, and the
  // metrics equal those of the training run's final evaluation.
  eval::EvalOptions options;
  options.checkpoint = (dir / "run").string();
  options.threads = 1;
  const auto evaluated = eval::evaluate_checkpoint(options, s.data);
  EXPECT_EQ(evaluated.users, 120);
  std::ifstream metrics(dir / "run" / "metrics-rank-00000.jsonl");
  std::string line, last_eval;
  while (std::getline(metrics, line)) {
    if (line.find("\"eval\"") != std::string::npos) last_eval = line;
  }
  const auto trained = nlohmann::json::parse(last_eval);
  EXPECT_NEAR(evaluated.metrics.at("hr@10"), trained.at("hr@10").get<double>(), 1e-12);
  EXPECT_NEAR(evaluated.metrics.at("ndcg@10"), trained.at("ndcg@10").get<double>(), 1e-12);

  // Another model: refused before anything is loaded, naming the key.
  const auto manifest = ckpt::read_manifest(latest);
  auto other = s.model;
  other.dim = 32;
  try {
    ckpt::check_compatible(manifest, other, manifest.num_items, latest);
    FAIL() << "expected a refusal";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "model.dim");
  }
  try {
    ckpt::check_compatible(manifest, s.model, manifest.num_items + 1, latest);
    FAIL() << "expected a refusal";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("items"), std::string::npos);
  }

  // A corrupt file: the checksum names it.
  const auto corrupt = dir / "corrupt";
  std::filesystem::copy(latest, corrupt, std::filesystem::copy_options::recursive);
  {
    std::fstream f(corrupt / "dense.h5", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2000);
    f.put('\x5a');
  }
  try {
    ckpt::read_manifest(corrupt);
    FAIL() << "expected a refusal";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("dense.h5: checksum"), std::string::npos) << e.what();
  }
  // A missing rank file.
  std::filesystem::remove(latest / "emb-rank-00000-of-00001.h5");
  try {
    ckpt::read_manifest(latest);
    FAIL() << "expected a refusal";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("emb-rank-00000-of-00001.h5: missing"), std::string::npos) << e.what();
  }
  // Resuming from it fails the same way instead of training from a half-loaded state.
  auto resume = small_setup(dataset, dir / "run");
  resume.train.max_steps = 25;
  resume.train.resume = "auto";
  EXPECT_THROW(run(resume), DataError);
}

// Nothing learns (lr 0): every validation figure ties the first, which stays
// the best; patience 2 stops the run after exactly the third evaluation.
TEST(Selection, EarlyStopsAfterExactlyPatienceEvaluationsWithoutImprovementAndKeepsTheBest) {
  testing::ScratchDir dir;
  const auto dataset = make_dataset(dir.path());
  auto s = selecting_setup(dataset, dir / "run");
  s.train.lr = 0;
  s.train.sparse_lr = 0;
  s.train.early_stop_patience = 2;
  const auto result = run(s);
  const std::int64_t per_epoch = data::HistoryLoader(dataset, s.data, data::SplitPart::Train, 0, 1).batches_per_epoch();
  ASSERT_GT(per_epoch, 4);  // checkpoints every 4 steps fall between the evaluations
  EXPECT_TRUE(result.stopped_early);
  EXPECT_EQ(result.steps, 3 * per_epoch);
  EXPECT_EQ(result.best_step, per_epoch);
  EXPECT_EQ(result.best_epoch, 1);
  EXPECT_EQ(result.selected_by, "valid.ndcg@10");

  // Three validation records (part 1), then test at the best checkpoint (part 2).
  const auto evals = eval_records(dir / "run");
  ASSERT_EQ(evals.size(), 4u);
  for (int e = 0; e < 3; ++e) {
    EXPECT_EQ(evals[e].at("part"), 1.0);
    EXPECT_EQ(evals[e].at("step"), static_cast<double>((e + 1) * per_epoch));
    EXPECT_EQ(evals[e].at("ndcg@10"), evals[0].at("ndcg@10"));
  }
  EXPECT_EQ(evals[3].at("part"), 2.0);
  EXPECT_EQ(evals[3].at("best_step"), static_cast<double>(per_epoch));
  EXPECT_EQ(evals[3].at("selected_value"), evals[0].at("ndcg@10"));

  // keep_ckpts = 1 keeps the newest and, besides it, the best.
  const auto root = dir / "run" / "ckpt";
  EXPECT_EQ(read_text(root / "LATEST"), ckpt::step_directory_name(3 * per_epoch));
  EXPECT_EQ(read_text(root / "BEST"), ckpt::step_directory_name(per_epoch));
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(root)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"BEST", "LATEST", ckpt::step_directory_name(per_epoch),
                                             ckpt::step_directory_name(3 * per_epoch)}));
  const auto best = ckpt::read_manifest(root / ckpt::step_directory_name(per_epoch));
  EXPECT_EQ(best.trainer.selection.best_step, per_epoch);
  EXPECT_EQ(best.trainer.selection.evals_since_best, 0);
  EXPECT_EQ(ckpt::read_manifest(root / ckpt::step_directory_name(3 * per_epoch)).trainer.selection.evals_since_best, 2);

  // Resumed with the same patience, it stays stopped; with more, it continues.
  auto again = s;
  again.train.resume = "auto";
  const auto stopped = run(again);
  EXPECT_TRUE(stopped.stopped_early);
  EXPECT_EQ(stopped.steps, 3 * per_epoch);
  EXPECT_EQ(eval_records(dir / "run").size(), 5u);  // only the test record at the best again
  again.train.early_stop_patience = 3;
  const auto more = run(again);
  EXPECT_EQ(more.steps, 4 * per_epoch);
  EXPECT_EQ(more.best_step, per_epoch);
}

// A learning run selected by valid.ndcg@10 with patience, against the same
// run interrupted mid-epoch and resumed: the same validation figures, the
// same best checkpoint and stop; the test figure reported at the end is that
// of `longrec eval --checkpoint RUN/ckpt/BEST`.
TEST(Selection, AResumedRunSelectsAndStopsAsTheUninterruptedOne) {
  testing::ScratchDir dir;
  const auto dataset = make_dataset(dir.path());
  auto whole = selecting_setup(dataset, dir / "whole");
  whole.train.early_stop_patience = 1;
  const auto reference = run(whole);
  const std::int64_t per_epoch =
      data::HistoryLoader(dataset, whole.data, data::SplitPart::Train, 0, 1).batches_per_epoch();

  auto first = selecting_setup(dataset, dir / "split");
  first.train.early_stop_patience = 1;
  first.train.max_steps = 2 * per_epoch + 3;  // mid-epoch, after two evaluations
  run(first);
  auto second = first;
  second.train.max_steps = 0;
  second.train.resume = "auto";
  const auto resumed = run(second);

  EXPECT_EQ(resumed.steps, reference.steps);
  EXPECT_TRUE(reference.stopped_early);
  EXPECT_EQ(reference.steps, 5 * per_epoch);
  EXPECT_EQ(resumed.stopped_early, reference.stopped_early);
  EXPECT_EQ(resumed.best_step, reference.best_step);
  EXPECT_EQ(resumed.best_value, reference.best_value);
  ASSERT_GE(reference.best_step, per_epoch);
  // The validation records (part 1) the same; the split run's first half also
  // reported test at its best so far when it ended, the last record is the whole run's.
  const auto all_a = eval_records(dir / "whole"), all_b = eval_records(dir / "split");
  std::vector<nlohmann::json> a, b;
  for (const auto& r : all_a) {
    if (r.at("part") == 1.0) a.push_back(r);
  }
  for (const auto& r : all_b) {
    if (r.at("part") == 1.0) b.push_back(r);
  }
  ASSERT_EQ(a.size(), 5u);  // epochs 1-5: the fifth does not improve, patience 1 stops there
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    for (const char* key : {"step", "ndcg@10", "hr@10", "mrr"}) {
      EXPECT_EQ(a[i].at(key), b[i].at(key)) << "record " << i << " " << key;
    }
  }
  for (const char* key : {"part", "step", "best_step", "selected_value", "ndcg@10", "hr@10", "mrr"}) {
    EXPECT_EQ(all_a.back().at(key), all_b.back().at(key)) << "the test record at the best, " << key;
  }
  EXPECT_EQ(read_text(dir / "whole/ckpt/BEST"), ckpt::step_directory_name(reference.best_step));
  EXPECT_EQ(read_text(dir / "split/ckpt/BEST"), ckpt::step_directory_name(reference.best_step));
  // The best is the first maximum of the validation figures.
  double best_value = -1;
  double best_step = -1;
  for (const auto& r : a) {
    if (r.at("part") == 1.0 && r.at("ndcg@10").get<double>() > best_value) {
      best_value = r.at("ndcg@10");
      best_step = r.at("step");
    }
  }
  EXPECT_EQ(best_step, static_cast<double>(reference.best_step));
  EXPECT_EQ(best_value, reference.best_value);

  eval::EvalOptions options;
  options.checkpoint = (dir / "whole/ckpt/BEST").string();
  options.threads = 1;
  options.part = "test";
  options.split_from_checkpoint = true;
  const auto evaluated = eval::evaluate_checkpoint(options, whole.data);
  const auto& last = all_a.back();
  EXPECT_EQ(last.at("part"), 2.0);
  EXPECT_EQ(last.at("best_step"), static_cast<double>(reference.best_step));
  EXPECT_NEAR(evaluated.metrics.at("ndcg@10"), last.at("ndcg@10").get<double>(), 1e-12);
  EXPECT_NEAR(evaluated.metrics.at("hr@10"), last.at("hr@10").get<double>(), 1e-12);
}

TEST(Selection, UnderLooIsRefusedBeforeTraining) {
  testing::ScratchDir dir;
  auto s = selecting_setup(make_dataset(dir.path()), dir / "run");
  s.data.split = "loo";
  EXPECT_THROW(run(s), ConfigError);
  EXPECT_FALSE(std::filesystem::exists(dir / "run" / "ckpt"));
}

TEST(Training, ATinyModelOverfitsATinyDataset) {
  testing::ScratchDir dir;
  data::SynthConfig c;
  c.out = (dir / "tiny").string();
  c.users = 16;
  c.items = 30;
  c.clusters = 3;
  c.mean_length = 12;
  c.min_length = 8;
  c.max_length = 16;
  c.repeat_prob = 0;
  data::generate_synthetic(c);
  auto s = small_setup(c.out, dir / "run");
  s.model.dropout = 0;
  s.model.dim = 32;
  s.model.blocks = 2;
  s.model.num_negatives = 29;
  s.train.lr = 1e-2;
  s.train.sparse_lr = 1e-2;
  s.train.epochs = 300;
  s.train.max_steps = 0;
  s.train.ckpt_every = 0;
  s.train.log_every = 50;
  run(s);
  const auto losses = train_losses(dir / "run");
  ASSERT_FALSE(losses.empty());
  EXPECT_LT(losses.rbegin()->second, 0.3) << "final training loss " << losses.rbegin()->second;
}

// Personalization tokens through the whole path: loader windows of 24 events
// -> interleaved slots -> training -> checkpoint (the token table included)
// -> exact resume -> evaluation of the checkpoint; and a checkpoint of a
// model with another token layout is refused.
TEST(Training, PersonalizationTokensTrainResumeAndEvaluate) {
  testing::ScratchDir dir;
  const auto dataset = make_dataset(dir.path());
  const auto with_tokens = [&](const std::filesystem::path& run_dir) {
    auto s = small_setup(dataset, run_dir);
    s.model.personalization.segment_len = 6;
    s.model.personalization.tokens_per_group = 2;
    s.model.personalization.recent_window = 6;
    s.model.personalization.max_groups = 3;
    s.model.max_len = 30;  // up to 24 events + 3 groups x 2 tokens
    s.data.max_len = 18;   // trained on fewer: eval must use 18 too, not the model's 24
    s.train.max_steps = 10;
    return s;
  };
  run(with_tokens(dir / "whole"));
  const auto reference = train_losses(dir / "whole");
  ASSERT_EQ(reference.size(), 10u);
  auto first = with_tokens(dir / "split");
  first.train.max_steps = 6;
  run(first);
  auto second = with_tokens(dir / "split");
  second.train.resume = "auto";
  run(second);
  const auto resumed = train_losses(dir / "split");
  for (std::int64_t step = 1; step <= 10; ++step) {
    ASSERT_TRUE(resumed.contains(step)) << "step " << step;
    EXPECT_DOUBLE_EQ(resumed.at(step), reference.at(step)) << "step " << step;
  }
  const auto checkpoint = ckpt::resolve_checkpoint((dir / "whole").string(), (dir / "whole").string());
  const auto manifest = ckpt::read_manifest(checkpoint);
  EXPECT_EQ(manifest.model.personalization.segment_len, 6);
  EXPECT_EQ(manifest.model.personalization.total_tokens(), 6);
  eval::EvalOptions options;
  options.checkpoint = (dir / "whole").string();
  options.threads = 1;
  options.long_history = 24;
  const auto result = eval::evaluate_checkpoint(options, data::LoaderConfig{});
  EXPECT_EQ(result.users, 120);
  EXPECT_GT(result.metrics.at("hr@200"), 0.0);
  EXPECT_TRUE(result.metrics.contains("hist>24/ndcg@10"));
  // With the window the checkpoint was trained with (what `longrec eval` does
  // unless --data.max_len is given), the metrics of training's final eval.
  options.window_from_checkpoint = true;
  const auto same_window = eval::evaluate_checkpoint(options, data::LoaderConfig{});
  std::ifstream metrics(dir / "whole" / "metrics-rank-00000.jsonl");
  std::string line, last_eval;
  while (std::getline(metrics, line)) {
    if (line.find("\"kind\":\"eval\"") != std::string::npos) last_eval = line;
  }
  ASSERT_FALSE(last_eval.empty());
  const auto trained = nlohmann::json::parse(last_eval);
  for (const auto* key : {"hr@10", "ndcg@10", "mrr"}) {
    EXPECT_DOUBLE_EQ(same_window.metrics.at(key), trained.at(key).get<double>()) << key;
  }
  // Resuming with another token layout names the key that differs.
  auto other = with_tokens(dir / "whole");
  other.model.personalization.tokens_per_group = 1;
  other.train.resume = "auto";
  other.train.max_steps = 12;
  try {
    run(other);
    ADD_FAILURE() << "a checkpoint with another token layout was loaded";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "personalization.tokens_per_group");
  }
}

}  // namespace longrec::train
