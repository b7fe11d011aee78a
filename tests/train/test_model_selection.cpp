// Best-checkpoint selection and early stopping as decisions (torch-free):
// train.select_by and train.early_stop_patience checked by key; the best kept
// and the stop taken after exactly N evaluations without improvement; a run
// resumed from the state after any evaluation (through the manifest's JSON)
// decides as the uninterrupted one. The training runs are in test_resume.cpp.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "longrec/ckpt/manifest.h"
#include "longrec/core/config.h"
#include "longrec/data/loader.h"
#include "longrec/train/model_selection.h"
#include "longrec/train/train_config.h"
#include "support/config_args.h"

namespace longrec::train {

namespace {

testing::Refusal refusal_of(std::vector<std::string> args) {
  return testing::refusal_of([&] {
    TrainConfig train;
    OptionRegistry r{"train", "test", "train"};
    register_train_options(r, train);
    args.insert(args.begin(), "--train.dataset=unused");
    testing::parse_args(r, "train", args);
  });
}

struct Step {
  bool improved, stop;
  bool operator==(const Step&) const = default;
};

// The decisions for `values`, evaluated at steps 10, 20, ... (epochs 1, 2, ...).
std::vector<Step> decide(ModelSelection& selection, const std::vector<double>& values, std::size_t first = 0) {
  std::vector<Step> out;
  for (std::size_t i = first; i < values.size(); ++i) {
    const auto d =
        selection.observe(values[i], 10 * static_cast<std::int64_t>(i + 1), static_cast<std::int64_t>(i + 1));
    out.push_back({d.improved, d.stop});
    if (d.stop) break;
  }
  return out;
}

// The state as a checkpoint carries it: through the manifest's JSON (written
// as save_checkpoint writes it, read by parse_manifest).
ckpt::SelectionState through_manifest(const ckpt::SelectionState& s, std::int64_t step) {
  nlohmann::json m;
  m["format"] = ckpt::kCheckpointFormat;
  m["version"] = ckpt::kCheckpointVersion;
  m["step"] = step;
  m["epoch"] = step / 10;
  m["loader"] = {{"epoch", step / 10}, {"batch", 0}};
  m["batches_per_epoch"] = 10;
  m["world_size"] = 1;
  m["history_window"] = 8;
  m["num_items"] = 5;
  m["model"] = nlohmann::json::parse(model::model_config_to_json(model::ModelConfig{}));
  m["config_ini"] = "";
  m["dataset"] = "d";
  m["tensors"] = nlohmann::json::object();
  m["files"] = {{ckpt::kDenseFile, "crc32:00000000"}, {ckpt::embedding_file_name(0, 1), "crc32:00000000"}};
  m["selection"] = {{"metric", s.metric},
                    {"best_step", s.best_step},
                    {"best_epoch", s.best_epoch},
                    {"best_value", s.best_value},
                    {"evals_since_best", s.evals_since_best},
                    {"last_eval_step", s.last_eval_step}};
  return ckpt::parse_manifest(ckpt::seal_manifest(m.dump()), "test").trainer.selection;
}

const SelectBy kNdcg{"valid", "ndcg@10"};

}  // namespace

TEST(SelectBy, AcceptsValidMetricsAndRefusesOthersByKey) {
  EXPECT_FALSE(parse_select_by(""));
  EXPECT_FALSE(parse_select_by("none"));
  const auto s = parse_select_by("valid.ndcg@10");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->part, "valid");
  EXPECT_EQ(s->metric, "ndcg@10");
  EXPECT_TRUE(parse_select_by("valid.mrr"));
  EXPECT_TRUE(parse_select_by("valid.hr@200"));
  EXPECT_EQ(selectable_metrics().size(), 13u);  // hr@ and ndcg@ 1,5,10,20,50,200, mrr
  // Other cutoffs: what that evaluation reports, nothing else.
  EXPECT_TRUE(parse_select_by("valid.ndcg@30", {3, 30}));
  EXPECT_THROW(parse_select_by("valid.ndcg@10", {3, 30}), ConfigError);

  auto r = refusal_of({"--train.select_by=valid.ndcg@11"});
  EXPECT_EQ(r.key, "train.select_by");
  EXPECT_NE(r.message.find("'valid.ndcg@11'"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find(
                "hr@1, hr@5, hr@10, hr@20, hr@50, hr@200, ndcg@1, ndcg@5, ndcg@10, ndcg@20, ndcg@50, ndcg@200, mrr"),
            std::string::npos)
      << r.message;
  r = refusal_of({"--train.select_by=test.ndcg@10"});
  EXPECT_EQ(r.key, "train.select_by");
  EXPECT_NE(r.message.find("chosen on the test set"), std::string::npos) << r.message;
  EXPECT_EQ(refusal_of({"--train.select_by=train.mrr"}).key, "train.select_by");
  EXPECT_EQ(refusal_of({"--train.select_by=ndcg@10"}).key, "train.select_by");
  EXPECT_EQ(refusal_of({"--train.select_by=valid.ndcg@10"}).key, "");  // accepted
}

TEST(SelectBy, PatienceNeedsASelectionAndPeriodicEvaluationsAndLooIsRefused) {
  auto r = refusal_of({"--train.early_stop_patience=-1"});
  EXPECT_EQ(r.key, "train.early_stop_patience");
  r = refusal_of({"--train.early_stop_patience=3"});
  EXPECT_EQ(r.key, "train.early_stop_patience");
  EXPECT_NE(r.message.find("train.select_by is none"), std::string::npos) << r.message;
  r = refusal_of({"--train.select_by=valid.mrr", "--train.eval_every=0"});
  EXPECT_EQ(r.key, "train.select_by");
  EXPECT_NE(r.message.find("train.eval_every = 0"), std::string::npos) << r.message;
  EXPECT_EQ(refusal_of({"--train.select_by=valid.mrr", "--train.early_stop_patience=3"}).key, "");

  TrainConfig train;
  data::LoaderConfig data;
  train.select_by = "valid.ndcg@10";
  data.split = "loo";
  try {
    check_selection(train, data);
    ADD_FAILURE() << "selection under loo accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "train.select_by");
    EXPECT_NE(std::string(e.what()).find("data.split=last2"), std::string::npos) << e.what();
  }
  data.split = "last2";
  EXPECT_NO_THROW(check_selection(train, data));
  train.select_by = "none";
  data.split = "loo";
  EXPECT_NO_THROW(check_selection(train, data));
}

TEST(ModelSelection, KeepsTheBestAndStopsAfterExactlyPatienceEvaluationsWithout) {
  // A peak at the second evaluation; a tie is no improvement.
  const std::vector<double> values{0.10, 0.30, 0.20, 0.30, 0.25, 0.29, 0.50};
  ModelSelection selection(kNdcg, 3, {});
  const auto steps = decide(selection, values);
  EXPECT_EQ(steps, (std::vector<Step>{{true, false}, {true, false}, {false, false}, {false, false}, {false, true}}));
  const auto& s = selection.state();
  EXPECT_EQ(s.metric, "valid.ndcg@10");
  EXPECT_EQ(s.best_step, 20);
  EXPECT_EQ(s.best_epoch, 2);
  EXPECT_EQ(s.best_value, 0.30);
  EXPECT_EQ(s.evals_since_best, 3);
  EXPECT_EQ(s.last_eval_step, 50);
  EXPECT_TRUE(selection.patience_used_up());
  EXPECT_TRUE(selection.counted(50));
  EXPECT_FALSE(selection.counted(60));
  EXPECT_THROW(selection.observe(0.9, 50, 5), Error);  // the same evaluation twice

  // Without patience it never stops, and the late peak becomes the best.
  ModelSelection no_patience(kNdcg, 0, {});
  const auto all = decide(no_patience, values);
  EXPECT_EQ(all.size(), values.size());
  EXPECT_EQ(no_patience.state().best_step, 70);
  EXPECT_FALSE(no_patience.patience_used_up());
}

TEST(ModelSelection, NonFiniteValuesNeverImprove) {
  ModelSelection selection(kNdcg, 2, {});
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(decide(selection, {nan, 0.1, std::numeric_limits<double>::infinity(), nan}),
            (std::vector<Step>{{false, false}, {true, false}, {false, false}, {false, true}}));
  EXPECT_EQ(selection.state().best_step, 20);
}

TEST(ModelSelection, AResumedSelectionDecidesAsTheUninterruptedOne) {
  const std::vector<double> values{0.12, 0.18, 0.17, 0.181, 0.16, 0.15, 0.19, 0.14};
  ModelSelection whole(kNdcg, 2, {});
  const auto reference = decide(whole, values);
  ASSERT_EQ(reference.size(), 6u);  // best at the 4th, stops at the 6th
  for (std::size_t k = 1; k < reference.size(); ++k) {
    ModelSelection first(kNdcg, 2, {});
    auto head = decide(first, std::vector<double>(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k)));
    const auto restored = through_manifest(first.state(), 10 * static_cast<std::int64_t>(k));
    EXPECT_EQ(restored, first.state()) << k;
    ModelSelection resumed(kNdcg, 2, restored);
    const auto tail = decide(resumed, values, k);
    head.insert(head.end(), tail.begin(), tail.end());
    EXPECT_EQ(head, reference) << "resumed after evaluation " << k;
    EXPECT_EQ(resumed.state(), whole.state()) << k;
  }
}

TEST(ModelSelection, ManifestsWithoutSelectionLoadAndEditedOnesAreRefused) {
  ckpt::SelectionState s{"valid.mrr", 20, 2, 0.125, 1, 30};
  EXPECT_EQ(through_manifest(s, 30), s);
  // best after the last evaluation, or after the checkpoint's step: edited.
  s.best_step = 40;
  EXPECT_THROW(through_manifest(s, 30), DataError);
  s = {"valid.mrr", 20, 2, 0.125, 1, 40};
  EXPECT_THROW(through_manifest(s, 30), DataError);
}

}  // namespace longrec::train
