#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>

#include "longrec/ckpt/checkpoint.h"
#include "longrec/core/error.h"
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

void run(const Setup& s) { run_training(s.train, s.model, s.data, "", ""); }

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
