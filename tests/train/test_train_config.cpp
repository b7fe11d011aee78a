// `longrec train`'s keys as the CLI registers them ([train], [model], [data]):
// non-finite numbers refused by key, every number bounded, the size
// descriptor in conflict with an explicit key refused, the printed table
// showing the values used, and every shipped config accepted with a step
// estimate far below a workstation's memory.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>

#include "longrec/core/config.h"
#include "longrec/data/loader.h"
#include "longrec/data/synth.h"
#include "longrec/model/model_config.h"
#include "longrec/sweep/descriptor.h"
#include "longrec/train/train_config.h"
#include "support/config_args.h"
#include "support/test_support.h"

namespace longrec::train {

namespace {

struct TrainKeys {
  TrainConfig train;
  model::ModelConfig model;
  data::LoaderConfig data;
  OptionRegistry r{"train", "test", "train"};
  TrainKeys() {
    register_train_options(r, train);
    model::register_model_options(r, model);
    data::register_loader_options(r, data);
  }
  void parse(std::vector<std::string> args) {
    args.insert(args.begin(), "--train.dataset=unused");
    testing::parse_args(r, "train", args);
  }
};

testing::Refusal refusal_of(const std::vector<std::string>& args) {
  return testing::refusal_of([&] { TrainKeys().parse(args); });
}

}  // namespace

TEST(TrainConfigLimits, EveryFloatingKeyRefusesNonFiniteValuesByKey) {
  const std::vector<std::string> keys = {"train.lr",           "train.beta1",        "train.beta2",
                                         "train.weight_decay", "train.min_lr_ratio", "train.clip_grad_norm",
                                         "train.sparse_lr",    "model.dropout",      "model.attn_dropout",
                                         "model.temperature"};
  for (const auto& key : keys) {
    for (const std::string value : {"nan", "inf", "-inf"}) {
      const auto r = refusal_of({"--" + key + "=" + value});
      EXPECT_EQ(r.key, key) << value << ": " << r.message;
      EXPECT_NE(r.message.find("expected a finite value"), std::string::npos) << r.message;
    }
  }
  EXPECT_NE(refusal_of({"--train.lr=nan"}).message.find("config key 'train.lr': got nan, expected a finite value in"),
            std::string::npos);
}

TEST(TrainConfigLimits, EveryNumberHasAnUpperBound) {
  TrainKeys defaults;
  int numbers = 0;
  for (const auto& row : defaults.r.resolved()) {
    const bool number = !row.value.empty() && row.value.find_first_not_of("0123456789.") == std::string::npos;
    // Any seed is a seed; a clip norm above any gradient norm clips nothing.
    if (!number || row.key.ends_with(".seed") || row.key == "train.clip_grad_norm") continue;
    ++numbers;
    const auto r = refusal_of({"--" + row.key + "=9223372036854775807"});
    EXPECT_EQ(r.key, row.key) << "accepted int64 max: " << r.message;
  }
  EXPECT_GE(numbers, 35);
  // The values of the issue, each refused by its own key's bound.
  const std::vector<std::pair<std::string, std::string>> absurd = {
      {"model.dim", "1e9"},         {"model.num_negatives", "1e9"}, {"model.time_buckets", "1e9"},
      {"model.max_len", "1e9"},     {"model.dim", "100000"},        {"model.heads", "1000000"},
      {"train.threads", "100000"},  {"data.batch_size", "1e9"},     {"personalization.max_groups", "1e9"},
      {"data.shuffle_users", "1e9"}};
  for (const auto& [key, value] : absurd) {
    const auto r = refusal_of({"--" + key + "=" + value});
    EXPECT_EQ(r.key, key) << value << ": " << r.message;
    EXPECT_NE(r.message.find("expected a value in ["), std::string::npos) << r.message;
  }
}

TEST(TrainConfigLimits, SizeDescriptorAndAnExplicitKeyThatDisagreeAreAConflict) {
  const auto r = refusal_of({"--model.size=hstu-d64-l2-h1", "--model.dim=128"});
  EXPECT_EQ(r.key, "model.size") << r.message;
  EXPECT_NE(r.message.find("'hstu-d64-l2-h1' sets model.dim = 64, but model.dim = 128 is given (command line)"),
            std::string::npos)
      << r.message;
  EXPECT_NE(refusal_of({"--model.size=hstu-d64-l2-h1", "--model.blocks=4"}).message.find("model.blocks"),
            std::string::npos);
  EXPECT_NE(refusal_of({"--model.size=hstu-d64", "--model.backbone=sasrec"}).message.find("model.backbone"),
            std::string::npos);
  // From a file against the command line.
  testing::ScratchDir dir;
  const auto ini = testing::write_file(dir / "sized.ini", "[model]\nsize = hstu-d64-l2-h2\n");
  const auto from_file = refusal_of({"--config", ini.string(), "--model.heads=4"});
  EXPECT_EQ(from_file.key, "model.size");
  EXPECT_NE(from_file.message.find("model.heads = 2"), std::string::npos) << from_file.message;
  // Keys the descriptor leaves alone, or sets to the value given, are fine.
  EXPECT_EQ(refusal_of({"--model.size=hstu-d64", "--model.blocks=4"}).key, "");
  EXPECT_EQ(refusal_of({"--model.size=hstu-d64-l2-h1", "--model.dim=64"}).key, "");
}

TEST(TrainConfigLimits, TableShowsTheValuesTheSizeDescriptorSet) {
  TrainKeys keys;
  keys.parse({"--model.size=hstu-d64-l4-h2"});
  EXPECT_EQ(keys.model.dim, 64);
  std::map<std::string, OptionRegistry::Row> rows;
  for (const auto& row : keys.r.resolved()) rows[row.key] = row;
  EXPECT_EQ(rows["model.dim"].value, "64");
  EXPECT_EQ(rows["model.dim"].source, "model.size");
  EXPECT_EQ(rows["model.blocks"].value, "4");
  EXPECT_EQ(rows["model.heads"].value, "2");
  EXPECT_EQ(rows["model.heads"].source, "model.size");
  EXPECT_EQ(rows["model.size"].source, "command line");
  EXPECT_NE(keys.r.table().find("model.dim"), std::string::npos);
  // The resolved INI (descriptor and the keys it set) parses back to the same model.
  testing::ScratchDir dir;
  const auto ini = testing::write_file(dir / "resolved.ini", keys.r.ini());
  TrainKeys back;
  back.parse({"--config", ini.string()});
  EXPECT_EQ(back.model.describe(), keys.model.describe());
}

TEST(TrainConfigLimits, ShippedConfigsAreAcceptedAndTheirStepsFit) {
  const std::filesystem::path configs = std::filesystem::path(LONGREC_SOURCE_DIR) / "configs";
  int checked = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(configs)) {
    if (entry.path().extension() != ".ini") continue;
    const std::string name = entry.path().lexically_relative(configs).string();
    std::ifstream in(entry.path());
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.find("[synth]") != std::string::npos) {
      data::SynthConfig synth;
      OptionRegistry r("synth", "test", "synth");
      data::register_synth_options(r, synth);
      const std::string config = entry.path().string();
      std::vector<const char*> argv{"synth", "--config", config.c_str(), "--synth.out=unused"};
      EXPECT_NO_THROW(r.parse(static_cast<int>(argv.size()), argv.data())) << name;
      ++checked;
      continue;
    }
    if (text.find("[sweep]") != std::string::npos) {
      // A sweep descriptor: every point's config (base + overrides) is a valid training config that fits.
      const auto points = sweep::expand_points(sweep::read_sweep_descriptor(entry.path().string()));
      for (const auto& point : points) {
        std::vector<std::string> args{"--config", sweep::read_sweep_descriptor(entry.path().string()).base};
        for (const auto& [k, v] : point.overrides) {
          if (k != "train.dataset") args.push_back("--" + k + "=" + v);  // (TrainKeys gives one)
        }
        TrainKeys keys;
        ASSERT_NO_THROW(keys.parse(args)) << name << " point " << point.index;
        EXPECT_LT(check_training_memory(keys.train, keys.model, keys.data, 1, 1, 10000).total_bytes(),
                  20.0 * (1 << 30))
            << name << " point " << point.index;
      }
      EXPECT_GE(points.size(), 20u) << name;
      ++checked;
      continue;
    }
    TrainKeys keys;
    ASSERT_NO_THROW(keys.parse({"--config", entry.path().string()})) << name;
    // ML-1M has 3706 items, the synthetic demo 10000.
    const auto estimate = check_training_memory(keys.train, keys.model, keys.data, 1, 1, 10000);
    std::cout << name << ": " << model::format_bytes(estimate.total_bytes()) << "\n";
    // They run on a 24 GB workstation (docs/results.md).
    EXPECT_LT(estimate.total_bytes(), 20.0 * (1 << 30)) << name << ": " << estimate.describe(10);
    ++checked;
  }
  EXPECT_GE(checked, 16);
}

}  // namespace longrec::train
