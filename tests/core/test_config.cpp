#include <gtest/gtest.h>

#include "longrec/core/config.h"
#include "support/config_args.h"
#include "support/test_support.h"

namespace longrec {

namespace {

struct Model {
  int dim = 64;
  int heads = 2;
  double dropout = 0.2;
  std::string kind = "hstu";
  bool flag = false;
};

struct Registry {
  Model model;
  std::string input;
  OptionRegistry r{"test", "a test command", "main"};
  Registry() {
    r.add("main", "input", &input, "input file");
    r.add("model", "dim", &model.dim, "width", check::at_least(1));
    r.add("model", "heads", &model.heads, "heads", check::at_least(1));
    r.add("model", "dropout", &model.dropout, "dropout", check::in_range(0.0, 1.0));
    r.add("model", "kind", &model.kind, "backbone", check::one_of({"hstu", "sasrec"}));
    r.flag("model", "flag", &model.flag, "a switch");
    r.constraint([this] {
      if (model.dim % model.heads != 0) {
        throw ConfigError("model.heads", fmt::format("{} heads do not divide model.dim = {}", model.heads, model.dim));
      }
    });
  }
  bool parse(const std::vector<std::string>& args) { return testing::parse_args(r, "test", args); }
};

std::string error_of(Registry& reg, std::vector<std::string> args) {
  try {
    reg.parse(std::move(args));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Config, DefaultsFileAndCommandLineInPriorityOrder) {
  testing::ScratchDir dir;
  const auto ini = testing::write_file(dir / "a.ini", "# comment\n[model]\ndim = 96\nheads = 3\n");
  Registry reg;
  ASSERT_TRUE(reg.parse({"--config", ini.string(), "--model.heads=4"}));
  EXPECT_EQ(reg.model.dim, 96);       // from the file
  EXPECT_EQ(reg.model.heads, 4);      // command line wins over the file
  EXPECT_EQ(reg.model.dropout, 0.2);  // default
  const auto rows = reg.r.resolved();
  EXPECT_EQ(rows[1].key, "model.dim");
  EXPECT_EQ(rows[1].source, ini.string());
  EXPECT_EQ(rows[2].source, "command line");
  EXPECT_EQ(rows[3].source, "default");
}

TEST(Config, PrimarySectionKeysNeedNoPrefixAndHyphensEqualUnderscores) {
  Registry reg;
  ASSERT_TRUE(reg.parse({"--input=x.txt", "--model.flag"}));
  EXPECT_EQ(reg.input, "x.txt");
  EXPECT_TRUE(reg.model.flag);
  Registry reg2;
  ASSERT_TRUE(reg2.parse({"--model.flag=false", "--model.dropout", "0.5"}));
  EXPECT_FALSE(reg2.model.flag);
  EXPECT_EQ(reg2.model.dropout, 0.5);
}

TEST(Config, UnknownKeyInFileIsNamedWithItsLine) {
  testing::ScratchDir dir;
  const auto ini = testing::write_file(dir / "a.ini", "[model]\ndim = 96\n\nwidht = 3\n");
  Registry reg;
  const std::string error = error_of(reg, {"--config", ini.string()});
  EXPECT_NE(error.find("model.widht"), std::string::npos) << error;
  EXPECT_NE(error.find("a.ini:4"), std::string::npos) << error;
}

TEST(Config, UnknownKeyOnCommandLineIsNamed) {
  Registry reg;
  const std::string error = error_of(reg, {"--model.depth=3"});
  EXPECT_NE(error.find("model.depth"), std::string::npos) << error;
}

TEST(Config, WrongTypeNamesKeyAndExpectedType) {
  Registry reg;
  const std::string error = error_of(reg, {"--model.dim=wide"});
  EXPECT_NE(error.find("model.dim"), std::string::npos) << error;
  EXPECT_NE(error.find("an integer"), std::string::npos) << error;
  testing::ScratchDir dir;
  const auto ini = testing::write_file(dir / "b.ini", "[model]\ndropout = lots\n");
  Registry reg2;
  const std::string error2 = error_of(reg2, {"--config", ini.string()});
  EXPECT_NE(error2.find("model.dropout"), std::string::npos) << error2;
  EXPECT_NE(error2.find("b.ini:2"), std::string::npos) << error2;
}

TEST(Config, InvalidValuesAreRejectedWithTheKey) {
  Registry a;
  EXPECT_NE(error_of(a, {"--model.dim=-4"}).find("model.dim"), std::string::npos);
  Registry b;
  EXPECT_NE(error_of(b, {"--model.dropout=1.5"}).find("[0, 1]"), std::string::npos);
  Registry c;
  EXPECT_NE(error_of(c, {"--model.kind=gpt"}).find("expected one of: hstu, sasrec"), std::string::npos);
  Registry d;
  const std::string error = error_of(d, {"--model.dim=64", "--model.heads=3"});
  EXPECT_NE(error.find("model.heads"), std::string::npos) << error;
  EXPECT_NE(error.find("do not divide"), std::string::npos) << error;
}

TEST(Config, MissingConfigFileIsNamed) {
  Registry reg;
  const std::string error = error_of(reg, {"--config", "/nonexistent/x.ini"});
  EXPECT_NE(error.find("/nonexistent/x.ini"), std::string::npos) << error;
}

TEST(Config, ExistingFileValidator) {
  std::string path = "/nonexistent/file";
  OptionRegistry r("t", "", "t");
  r.add("t", "input", &path, "input", check::existing_file());
  const char* argv[] = {"t"};
  try {
    r.parse(1, argv);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "t.input");
    EXPECT_NE(std::string(e.what()).find("/nonexistent/file"), std::string::npos);
  }
}

TEST(Config, IniOutputParsesBackToTheSameValues) {
  Registry reg;
  ASSERT_TRUE(reg.parse({"--model.dim=32", "--model.heads=4", "--model.kind=sasrec"}));
  testing::ScratchDir dir;
  const auto ini = testing::write_file(dir / "resolved.ini", reg.r.ini());
  Registry back;
  ASSERT_TRUE(back.parse({"--config", ini.string()}));
  EXPECT_EQ(back.model.dim, 32);
  EXPECT_EQ(back.model.heads, 4);
  EXPECT_EQ(back.model.kind, "sasrec");
}

}  // namespace longrec

namespace longrec {

// Found by tests/fuzz/fuzz_config: Program_options' error messages substitute
// "%value%"-style placeholders in a loop that never ended when an argument held
// one. Every such error must now come back (the test would time out otherwise).
TEST(Config, ArgumentsHoldingMessagePlaceholdersAreRefusedNotLooped) {
  testing::ScratchDir dir;
  for (const std::string token : {"%value%", "%canonical_option%", "%option%", "%prefix_option%"}) {
    Registry a;
    EXPECT_NE(error_of(a, {"--model.flag=" + token}).find("model.flag"), std::string::npos) << token;
    Registry b;
    EXPECT_NE(error_of(b, {"--input=x", "--model.dim=" + token, "--input=y"}).find("model.dim"), std::string::npos);
    Registry c;
    EXPECT_NE(error_of(c, {"--model.dim=" + token}).find("model.dim"), std::string::npos) << token;
    Registry d;
    const auto ini = testing::write_file(dir / "p.ini", "[model]\nflag = " + token + "\ndim = " + token + "\n");
    EXPECT_NE(error_of(d, {"--config", ini.string()}), "") << token;
    Registry e;
    const auto twice = testing::write_file(dir / "q.ini", "[model]\nkind = " + token + "\nkind = " + token + "\n");
    EXPECT_NE(error_of(e, {"--config", twice.string()}), "") << token;
  }
}

// Issue 18, item 8: wrappers append overrides, so on the command line the
// last value of a key wins; the same key twice in one INI file is still refused.
TEST(Config, LastCommandLineValueWinsButAnIniFileMayNotRepeatAKey) {
  testing::ScratchDir dir;
  Registry a;
  ASSERT_TRUE(a.parse({"--model.dim=8", "--input=a", "--model.dim=16", "--main.input=b", "--input=c"}));
  EXPECT_EQ(a.model.dim, 16);
  EXPECT_EQ(a.input, "c");  // --input and --main.input are one key
  Registry b;
  const auto ini = testing::write_file(dir / "base.ini", "[model]\ndim = 4\n");
  ASSERT_TRUE(b.parse({"--config", ini.string(), "--model.dim=8", "--model.dim=12"}));
  EXPECT_EQ(b.model.dim, 12);
  Registry c;
  const auto twice = testing::write_file(dir / "twice.ini", "[model]\ndim = 4\ndim = 8\n");
  const auto error = error_of(c, {"--config", twice.string()});
  EXPECT_NE(error.find("model.dim"), std::string::npos) << error;
}

}  // namespace longrec
