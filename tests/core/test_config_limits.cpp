// Values that pass a naive check but cannot work: NaN and infinities (every
// `v < lo || v > hi` is false for NaN), integers that overflow their type or
// wrap (-1 into a huge unsigned value), exponent notation for integer keys,
// stray positional arguments and a directory given as --config.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "longrec/core/config.h"
#include "support/config_args.h"
#include "support/test_support.h"

namespace longrec {

namespace {

struct Keys {
  double ranged = 0.5, floor = 0.0, free = 1.0;
  int count = 4;
  std::int64_t steps = 10;
  std::uint64_t seed = 1;
  OptionRegistry r{"test", "a test command", "main"};
  Keys() {
    r.add("main", "ranged", &ranged, "in [0, 1]", check::in_range(0.0, 1.0));
    r.add("main", "floor", &floor, ">= 0", check::at_least(0.0));
    r.add("main", "free", &free, "no validator");
    r.add("main", "count", &count, "an int", check::in_range(1, 100));
    r.add("main", "steps", &steps, "an int64");
    r.add("main", "seed", &seed, "a uint64");
  }
  void parse(const std::vector<std::string>& args) { testing::parse_args(r, "test", args); }
};

// The ConfigError of parsing `args`: its key and message; empty key when accepted.
testing::Refusal refusal_of(const std::vector<std::string>& args) {
  return testing::refusal_of([&] { Keys().parse(args); });
}

}  // namespace

TEST(ConfigLimits, NonFiniteNumbersAreRefusedByKeyWhateverTheValidator) {
  for (const std::string key : {"main.ranged", "main.floor", "main.free"}) {
    for (const std::string value : {"nan", "NaN", "-nan", "inf", "-inf", "infinity"}) {
      const auto r = refusal_of({"--" + key + "=" + value});
      EXPECT_EQ(r.key, key) << key << "=" << value << ": " << r.message;
      EXPECT_NE(r.message.find("finite"), std::string::npos) << r.message;
    }
  }
  EXPECT_NE(refusal_of({"--main.ranged=nan"}).message.find("got nan, expected a finite value in [0, 1]"),
            std::string::npos)
      << refusal_of({"--main.ranged=nan"}).message;
  // From an INI file too.
  testing::ScratchDir dir;
  const auto ini = testing::write_file(dir / "nan.ini", "[main]\nfloor = nan\n");
  EXPECT_EQ(refusal_of({"--config", ini.string()}).key, "main.floor");
  // Finite values still pass; an overflowing double is refused, an underflowing one is a number.
  EXPECT_EQ(refusal_of({"--main.ranged=0.25", "--main.free=-1e300", "--main.floor=1e-320"}).key, "");
  EXPECT_EQ(refusal_of({"--main.free=1e999"}).key, "main.free");
}

TEST(ConfigLimits, IntegersNeverWrapAndOverflowNamesTheKey) {
  Keys keys;
  keys.parse({"--main.steps=9223372036854775807", "--main.seed=18446744073709551615"});
  EXPECT_EQ(keys.steps, std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(keys.seed, std::numeric_limits<std::uint64_t>::max());
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"main.count", "2147483648"},
      {"main.count", "-2147483649"},
      {"main.count", "99999999999999999999"},
      {"main.steps", "9223372036854775808"},
      {"main.seed", "-1"},
      {"main.seed", "18446744073709551616"},
      {"main.count", "1e10"},
      {"main.steps", "1e19"},
  };
  for (const auto& [key, value] : refused) {
    const auto r = refusal_of({"--" + key + "=" + value});
    EXPECT_EQ(r.key, key) << value << ": " << r.message;
    EXPECT_NE(r.message.find("'" + value + "' on the command line"), std::string::npos) << r.message;
  }
  EXPECT_NE(refusal_of({"--main.count=2147483648"}).message.find("expected an integer in [-2147483648, 2147483647]"),
            std::string::npos);
  EXPECT_NE(refusal_of({"--main.seed=-1"}).message.find("expected a non-negative integer"), std::string::npos);
}

TEST(ConfigLimits, ExponentFormIsTakenForIntegerKeysOnlyWhenExact) {
  Keys keys;
  keys.parse({"--main.steps=1e9", "--main.seed=2.5e3", "--main.count=+7"});
  EXPECT_EQ(keys.steps, 1000000000);
  EXPECT_EQ(keys.seed, 2500u);
  EXPECT_EQ(keys.count, 7);
  for (const std::string value : {"2.5", "1e-3", "0x10", "nan", "inf", "1e", "", "7 ", "seven"}) {
    const auto r = refusal_of({"--main.steps=" + value});
    EXPECT_EQ(r.key, "main.steps") << "'" << value << "' was accepted";
    EXPECT_NE(r.message.find("expected an integer"), std::string::npos) << r.message;
  }
  // The bound of the key applies to the converted value, named.
  const auto r = refusal_of({"--main.count=1e9"});
  EXPECT_EQ(r.key, "main.count");
  EXPECT_NE(r.message.find("got 1000000000, expected a value in [1, 100]"), std::string::npos) << r.message;
  // From a file: the file and line are named.
  testing::ScratchDir dir;
  const auto ini = testing::write_file(dir / "big.ini", "[main]\ncount = 5\nseed = -3\n");
  const auto from_file = refusal_of({"--config", ini.string()});
  EXPECT_EQ(from_file.key, "main.seed");
  EXPECT_NE(from_file.message.find("big.ini:3: got '-3'"), std::string::npos) << from_file.message;
}

TEST(ConfigLimits, StrayPositionalArgumentsAreRefusedByName) {
  for (const auto& args : std::vector<std::vector<std::string>>{{"foo"}, {"--main.count=3", "bar"}}) {
    const auto r = refusal_of(args);
    EXPECT_EQ(r.key, "(command line)");
    EXPECT_NE(r.message.find("unexpected argument '" + args.back() + "'"), std::string::npos) << r.message;
  }
  // A value after its key is not positional.
  EXPECT_EQ(refusal_of({"--main.count", "3"}).key, "");
}

TEST(ConfigLimits, ConfigThatIsADirectoryIsRefused) {
  testing::ScratchDir dir;
  const auto r = refusal_of({"--config", dir.path().string()});
  EXPECT_EQ(r.key, "config");
  EXPECT_NE(r.message.find("is a directory, expected an INI file"), std::string::npos) << r.message;
}

TEST(ConfigLimits, SourcesOfGivenDefaultAndDerivedValues) {
  Keys keys;
  keys.parse({"--main.count=5"});
  EXPECT_TRUE(keys.r.given("main.count"));
  EXPECT_FALSE(keys.r.given("main.steps"));
  keys.r.set_source("main.steps", "main.count");
  EXPECT_FALSE(keys.r.given("main.steps"));  // derived, not given
  EXPECT_EQ(keys.r.source_of("main.steps"), "main.count");
  EXPECT_EQ(keys.r.source_of("main.count"), "command line");
  EXPECT_EQ(keys.r.source_of("main.seed"), "default");
  // Help and resolved values keep showing the number as written before.
  EXPECT_NE(keys.r.help().find("--main.steps arg (=10)"), std::string::npos) << keys.r.help();
}

}  // namespace longrec
