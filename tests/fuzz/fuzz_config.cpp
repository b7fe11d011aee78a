// libFuzzer target: the INI file and the --key=value overrides (Boost
// program_options behind OptionRegistry) with keys of every type and the
// project's validators. Input: INI text, then a line "--", then one command-line
// argument per line. A ConfigError is the expected refusal; anything else is a finding.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_input_file.h"
#include "longrec/core/config.h"
#include "longrec/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto split = text.find("\n--\n");
  const std::string ini = text.substr(0, split);
  std::vector<std::string> args{"train"};
  if (split != std::string::npos) {
    std::size_t start = split + 4;
    while (start <= text.size() && args.size() < 64) {
      auto end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      const auto arg = text.substr(start, end - start);
      // --help prints the whole help text: not what is fuzzed here.
      if (arg != "--help" && arg != "-h" && arg.rfind("--config", 0) != 0) args.push_back(arg);
      start = end + 1;
    }
  }
  longrec::fuzz::InputFile file(reinterpret_cast<const std::uint8_t*>(ini.data()), ini.size(), "fuzz.ini");
  args.push_back("--config");
  args.push_back(file.path().string());

  std::int64_t steps = 100, batch = 32;
  int threads = 1;
  double lr = 1e-3, dropout = 0.1;
  double beta = 0.9;
  bool flag = false;
  std::string name = "hstu", path;
  longrec::OptionRegistry r("train", "fuzzed options", "train");
  namespace check = longrec::check;
  r.add("train", "max_steps", &steps, "steps", check::at_least<std::int64_t>(1));
  r.add("train", "threads", &threads, "threads", check::in_range(0, 1024));
  r.add("train", "lr", &lr, "learning rate", check::in_range(0.0, 10.0));
  r.add("train", "beta1", &beta, "beta1", check::in_range(0.0, 1.0));
  r.add("data", "batch_size", &batch, "batch", check::in_range<std::int64_t>(1, 1 << 20));
  r.add("model", "dropout", &dropout, "dropout", check::in_range(0.0, 1.0));
  r.add("model", "backbone", &name, "backbone", check::one_of({"hstu", "sasrec"}));
  r.add("train", "run_dir", &path, "run directory");
  r.flag("train", "deterministic", &flag, "a switch");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    (void)r.parse(static_cast<int>(argv.size()), argv.data());
    (void)r.table();
    (void)r.ini();
  } catch (const longrec::ConfigError&) {
  }
  return 0;
}
