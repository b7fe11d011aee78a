// Sweep descriptors: the points they expand to (order, overrides, budgets)
// and the refusals, each naming the file, the line and the key.
#include <gtest/gtest.h>

#include <string>

#include "longrec/core/error.h"
#include "longrec/sweep/descriptor.h"

namespace longrec::sweep {
namespace {

const char* kDescriptor = R"(# a comment
[sweep]
name = size-sweep
base = ../synth/hstu-demo.ini   # relative to the descriptor
budget = flops
budgets = 1e11, 3e11
ranks = 2

[set]
train.eval_every = 0
data.split = last2

[points]
small = model.dim=32 model.blocks=1
large = model.dim=64 model.blocks=2

[grid]
model.seed = 1, 2
data.batch_size = 64, 128, 256
)";

// The message of the ConfigError `text` raises, checked to name `key`.
std::string refusal(const std::string& text, const std::string& key) {
  try {
    parse_sweep_descriptor(text, "configs/sweeps/x.ini");
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), key) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "accepted:\n" << text;
  return "";
}

const std::string kHead = "[sweep]\nname = s\nbase = b.ini\nbudget = steps\nbudgets = 10\n";

TEST(SweepDescriptor, ParsesEveryKeyAndResolvesTheBase) {
  const auto d = parse_sweep_descriptor(kDescriptor, "configs/sweeps/size.ini");
  EXPECT_EQ(d.name, "size-sweep");
  EXPECT_EQ(d.base, "configs/synth/hstu-demo.ini");
  EXPECT_EQ(d.budget_kind, BudgetKind::kFlops);
  ASSERT_EQ(d.budgets.size(), 2u);
  EXPECT_DOUBLE_EQ(d.budgets[1], 3e11);
  EXPECT_EQ(d.ranks, 2);
  ASSERT_EQ(d.set.size(), 2u);
  EXPECT_EQ(d.set[1], Override("data.split", "last2"));
  ASSERT_EQ(d.points.size(), 2u);
  EXPECT_EQ(d.points[1].label, "large");
  EXPECT_EQ(format_overrides(d.points[1].overrides), "model.dim=64 model.blocks=2");
  ASSERT_EQ(d.grid.size(), 2u);
  EXPECT_EQ(d.grid[1].values, (std::vector<std::string>{"64", "128", "256"}));
  EXPECT_FALSE(d.checksum.empty());
  EXPECT_NE(d.checksum, parse_sweep_descriptor(std::string(kDescriptor) + "\n", "x").checksum);
}

TEST(SweepDescriptor, ExpandsListTimesGridTimesBudgetsInOrder) {
  const auto points = expand_points(parse_sweep_descriptor(kDescriptor, "configs/sweeps/size.ini"));
  ASSERT_EQ(points.size(), 2u * 2 * 3 * 2);
  // The list outermost, then the grid (last key fastest), budgets innermost.
  EXPECT_EQ(points[0].label, "small");
  EXPECT_EQ(format_overrides(points[0].varying), "model.dim=32 model.blocks=1 model.seed=1 data.batch_size=64");
  EXPECT_DOUBLE_EQ(points[0].budget, 1e11);
  EXPECT_DOUBLE_EQ(points[1].budget, 3e11);
  EXPECT_EQ(format_overrides(points[2].varying), "model.dim=32 model.blocks=1 model.seed=1 data.batch_size=128");
  EXPECT_EQ(format_overrides(points[6].varying), "model.dim=32 model.blocks=1 model.seed=2 data.batch_size=64");
  EXPECT_EQ(points[12].label, "large");
  EXPECT_EQ(format_overrides(points[23].varying), "model.dim=64 model.blocks=2 model.seed=2 data.batch_size=256");
  // [set] first, then what varies.
  EXPECT_EQ(format_overrides(points[23].overrides),
            "train.eval_every=0 data.split=last2 model.dim=64 model.blocks=2 model.seed=2 data.batch_size=256");
  for (std::size_t i = 0; i < points.size(); ++i) EXPECT_EQ(points[i].index, static_cast<int>(i));
}

TEST(SweepDescriptor, WithoutListOrGridOnePointPerBudget) {
  const auto points = expand_points(parse_sweep_descriptor(kHead, "x.ini"));
  ASSERT_EQ(points.size(), 1u);
  EXPECT_TRUE(points[0].overrides.empty());
  EXPECT_EQ(points[0].label, "");
  const auto grid_only = expand_points(parse_sweep_descriptor(kHead + "[grid]\nmodel.dim = 8, 16, 32\n", "x.ini"));
  ASSERT_EQ(grid_only.size(), 3u);
  EXPECT_EQ(format_overrides(grid_only[2].varying), "model.dim=32");
}

TEST(SweepDescriptor, RefusesUnknownKeysAndSectionsByLine) {
  EXPECT_NE(refusal(kHead + "epochs = 3\n", "sweep.epochs")
                .find("configs/sweeps/x.ini:6: unknown key 'epochs' in "
                      "[sweep]"),
            std::string::npos);
  EXPECT_NE(refusal(kHead + "[grids]\n", "sweep").find("x.ini:6: unknown section [grids]"), std::string::npos);
  EXPECT_NE(refusal("name = s\n", "sweep").find("x.ini:1: 'name = s' is outside any section"), std::string::npos);
  EXPECT_NE(refusal(kHead + "[grid]\nmodel = 1, 2\n", "model")
                .find("x.ini:7: [grid] key 'model': expected a "
                      "`longrec train` key section.key"),
            std::string::npos);
  EXPECT_NE(refusal(kHead + "name = t\n", "sweep.name").find("x.ini:6: [sweep] name given twice (first on line 2)"),
            std::string::npos);
  EXPECT_NE(refusal("[sweep]\nname = s\nbudget = steps\nbudgets = 1\n", "sweep.base").find("[sweep] base is required"),
            std::string::npos);
}

TEST(SweepDescriptor, RefusesEmptyGrids) {
  EXPECT_NE(refusal(kHead + "[grid]\n", "grid").find("x.ini:6: [grid] is empty"), std::string::npos);
  EXPECT_NE(refusal(kHead + "[grid]\nmodel.dim =\n", "model.dim").find("x.ini:7: [grid] model.dim has no values"),
            std::string::npos);
  EXPECT_NE(refusal(kHead + "[grid]\nmodel.dim = 8,,16\n", "model.dim").find("an empty value in '8,,16'"),
            std::string::npos);
  EXPECT_NE(refusal(kHead + "[grid]\nmodel.dim = 8, 8\n", "model.dim").find("value '8' listed twice"),
            std::string::npos);
  EXPECT_NE(refusal(kHead + "[points]\n", "points").find("[points] is empty"), std::string::npos);
  EXPECT_NE(refusal(kHead + "[points]\na = \n", "points").find("point 'a' sets no key"), std::string::npos);
}

TEST(SweepDescriptor, RefusesBadBudgets) {
  const std::string head = "[sweep]\nname = s\nbase = b.ini\n";
  EXPECT_NE(refusal(head + "budget = tokens\nbudgets = 1\n", "sweep.budget")
                .find("got 'tokens', expected steps, epochs or flops"),
            std::string::npos);
  for (const char* bad : {"0", "-5", "nan", "inf", "1e400", "3x", " ,5"}) {
    EXPECT_NE(refusal(head + "budget = flops\nbudgets = 1e9, " + bad + "\n", "sweep.budgets")
                  .find("is not a positive finite number"),
              std::string::npos)
        << bad;
  }
  EXPECT_NE(
      refusal(head + "budget = steps\nbudgets = 2.5\n", "sweep.budgets").find("2.5 is not a whole number of steps"),
      std::string::npos);
  EXPECT_NE(refusal(kHead + "ranks = 0\n", "sweep.ranks").find("expected a whole number in [1, 65536]"),
            std::string::npos);
}

TEST(SweepDescriptor, RefusesKeysTheSweepSetsAndKeysSetTwice) {
  EXPECT_NE(refusal(kHead + "[set]\ntrain.run_dir = x\n", "train.run_dir").find("set by `longrec sweep run`"),
            std::string::npos);
  EXPECT_NE(refusal(kHead + "[grid]\ntrain.max_steps = 5, 10\n", "train.max_steps").find("from each point's budget"),
            std::string::npos);
  EXPECT_NE(refusal(kHead + "[points]\na = train.epochs=3\n", "train.epochs").find("from each point's budget"),
            std::string::npos);
  EXPECT_NE(refusal(kHead + "[set]\nmodel.dim = 8\n[grid]\nmodel.dim = 8, 16\n", "model.dim")
                .find("model.dim is set twice ([set] line 7 and [grid] line 9)"),
            std::string::npos);
  EXPECT_NE(refusal(kHead + "[grid]\nmodel.dim = 8, 16\n[points]\na = model.dim=4\n", "model.dim")
                .find("x.ini:9: point 'a' sets model.dim, which [grid] sets too (line 7)"),
            std::string::npos);
  EXPECT_NE(refusal(kHead + "[points]\na = model.dim=4 model.dim=8\n", "model.dim").find("sets model.dim twice"),
            std::string::npos);
  EXPECT_NE(refusal(kHead + "[points]\na = model.dim\n", "points").find("'model.dim' is not key=value"),
            std::string::npos);
  EXPECT_NE(refusal(kHead + "[points]\na = model.dim=4\na = model.dim=8\n", "points")
                .find("point label 'a' given twice (first on line 7)"),
            std::string::npos);
}

TEST(SweepDescriptor, RefusesTooManyPoints) {
  std::string text = kHead + "[grid]\n";
  for (int k = 0; k < 6; ++k) text += fmt::format("model.k{} = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10\n", k);
  try {
    expand_points(parse_sweep_descriptor(text, "x.ini"));
    ADD_FAILURE() << "a million points accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("more than 100000 points"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace longrec::sweep
