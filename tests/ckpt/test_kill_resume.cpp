// Crash consistency of checkpoints, end to end:
//   - resume=auto with LATEST missing, empty or binary continues from the
//     newest complete checkpoint with the losses of an uninterrupted run;
//   - kill -9 at 20 random moments (half at a random time, half at a stage
//     of a random checkpoint write through the save observer, every stage at
//     least once), each
//     followed by resume=auto to the end: the losses, the final evaluation and
//     every tensor of the final checkpoint equal an uninterrupted run's, bit
//     for bit.
// Training runs in child processes of this executable (`--train-child`), so
// that SIGKILL ends a real training process. LONGREC_FAULT_SEED=<n> replays a
// draw (the seed is printed).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "longrec/ckpt/checkpoint.h"
#include "longrec/core/error.h"
#include "longrec/data/h5.h"
#include "longrec/train/trainer.h"
#include "support/synthetic_store.h"
#include "support/test_support.h"

extern char** environ;

namespace longrec::ckpt {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Setup {
  train::TrainConfig train;
  model::ModelConfig model;
  data::LoaderConfig data;
};

// 64 users, one window each, 8 per batch: 8 steps per epoch, 2 epochs, a
// checkpoint after every step (2 kept), so that writes are a large share of a run.
Setup tiny_setup(const fs::path& dataset, const fs::path& run_dir) {
  Setup s;
  s.train.dataset = dataset.string();
  s.train.run_dir = run_dir.string();
  s.train.epochs = 2;
  s.train.log_every = 1;
  s.train.eval_every = 0;
  s.train.threads = 1;
  s.train.device = "cpu";
  s.train.ckpt_every = 1;
  s.train.keep_ckpts = 2;
  s.train.sparse_optimizer = "adam";
  s.train.sparse_lr = 1e-3;
  s.train.resume = "auto";
  s.model.dim = 16;
  s.model.blocks = 1;
  s.model.heads = 2;
  s.model.max_len = 24;
  s.model.num_negatives = 16;
  s.data.batch_size = 8;
  s.data.max_len = 24;
  s.data.shuffle_users = 64;
  s.data.read_users = 16;
  return s;
}

fs::path make_dataset(const fs::path& dir) { return testing::make_synthetic_store(dir / "synth", 64, 100, 8, 20); }

// ---- the child: train (resume=auto), optionally killing itself at a save stage

const char* kill_stage = nullptr;
int kill_at = 0, seen = 0;
std::map<std::string, int> stage_counts;

void kill_at_stage(const char* stage, std::int64_t) {
  if (std::strcmp(stage, kill_stage) == 0 && ++seen == kill_at) ::kill(::getpid(), SIGKILL);
}
void count_stage(const char* stage, std::int64_t) { ++stage_counts[stage]; }

// --train-child RUN_DIR DATASET [--kill STAGE K | --count FILE]
int child_main(int argc, char** argv) {
  if (argc < 4) return 64;
  const auto s = tiny_setup(argv[3], argv[2]);
  std::string count_file;
  if (argc >= 6 && std::string(argv[4]) == "--kill") {
    kill_stage = argv[5];
    kill_at = argc >= 7 ? std::atoi(argv[6]) : 1;
    fault_injection::set_save_observer(&kill_at_stage);
  } else if (argc >= 6 && std::string(argv[4]) == "--count") {
    count_file = argv[5];
    fault_injection::set_save_observer(&count_stage);
  }
  try {
    train::run_training(s.train, s.model, s.data, "", "");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child: %s\n", e.what());
    return 1;
  }
  if (!count_file.empty()) {
    std::ofstream out(count_file);
    for (const auto& [stage, count] : stage_counts) out << stage << ' ' << count << '\n';
  }
  return 0;
}

// ---- the parent

fs::path self_exe() { return fs::read_symlink("/proc/self/exe"); }

pid_t spawn_child(const std::vector<std::string>& args, const fs::path& log) {
  std::vector<std::string> all{self_exe().string(), "--train-child"};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw SystemError(std::string("posix_spawn: ") + std::strerror(rc));
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

std::string tail_of(const fs::path& log, std::size_t bytes = 3000) {
  std::ifstream in(log);
  std::stringstream s;
  s << in.rdbuf();
  const auto text = s.str();
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

std::vector<json> records(const fs::path& run_dir, const std::string& kind) {
  std::vector<json> out;
  std::ifstream in(run_dir / "metrics-rank-00000.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = json::parse(line, nullptr, false);
    if (j.is_discarded()) throw DataError("malformed metrics line: " + line);
    if (j.at("kind") == kind) out.push_back(j);
  }
  return out;
}

template <typename T>
std::string compare_dataset(const h5::File& a, const h5::File& b, const std::string& name) {
  if (!a.has(name) || !b.has(name)) return name + " missing";
  const auto x = a.read<T>(name), y = b.read<T>(name);
  if (x.size() != y.size() || std::memcmp(x.data(), y.data(), x.size() * sizeof(T)) != 0) {
    return b.where(name) + " differs from " + a.where(name);
  }
  return {};
}

// The dense optimizer's state by parameter ("<group>/<index>/exp_avg", ...):
// its archive keys the state by TensorImpl address, which differs between
// processes, and so does the order of its records.
std::map<std::string, torch::Tensor> optimizer_state(const std::vector<std::uint8_t>& bytes) {
  torch::serialize::InputArchive archive;
  std::istringstream in(std::string(bytes.begin(), bytes.end()));
  archive.load_from(in);
  std::map<std::string, std::string> parameter;  // TensorImpl key -> "<group>/<index>"
  torch::serialize::InputArchive groups_archive;
  archive.read("param_groups", groups_archive);
  torch::Tensor groups;
  groups_archive.read("param_groups/size", groups);
  for (std::int64_t g = 0; g < groups.item<std::int64_t>(); ++g) {
    torch::serialize::InputArchive group;
    groups_archive.read("param_groups/" + std::to_string(g), group);
    torch::Tensor size;
    group.read("params/size", size);
    for (std::int64_t i = 0; i < size.item<std::int64_t>(); ++i) {
      c10::IValue key;
      group.read("params/" + std::to_string(i), key);
      parameter[key.toStringRef()] = std::to_string(g) + "/" + std::to_string(i);
    }
  }
  std::map<std::string, torch::Tensor> out;
  torch::serialize::InputArchive state;
  archive.read("state", state);
  for (const auto& key : state.keys()) {
    torch::serialize::InputArchive entry;
    state.read(key, entry);
    for (const auto& name : entry.keys()) {
      torch::Tensor t;
      if (entry.try_read(name, t)) out[parameter.at(key) + "/" + name] = t.contiguous();
    }
  }
  return out;
}

std::string compare_optimizers(const h5::File& a, const h5::File& b) {
  const auto x = optimizer_state(a.read<std::uint8_t>("/state/optimizer"));
  const auto y = optimizer_state(b.read<std::uint8_t>("/state/optimizer"));
  if (x.size() != y.size() || x.empty())
    return "optimizer state: " + std::to_string(y.size()) + " tensors vs " + std::to_string(x.size());
  for (const auto& [name, t] : x) {
    if (!y.contains(name)) return "optimizer state " + name + " missing";
    const auto& u = y.at(name);
    if (t.sizes() != u.sizes() || t.dtype() != u.dtype() || std::memcmp(t.data_ptr(), u.data_ptr(), t.nbytes()) != 0) {
      return "optimizer state " + name + " differs";
    }
  }
  return {};
}

// The first difference between a run and the reference ("" when identical):
// every logged step's loss, gradient norm and learning rate (re-done steps
// included), the final evaluation, and every tensor of the final checkpoint
// (parameters, item rows, optimizer states, RNG state).
std::string compare_runs(const fs::path& reference, const fs::path& run) {
  std::map<std::int64_t, json> expected;
  for (const auto& r : records(reference, "train")) expected[r.at("step").get<std::int64_t>()] = r;
  std::set<std::int64_t> seen_steps;
  for (const auto& r : records(run, "train")) {
    const auto step = r.at("step").get<std::int64_t>();
    seen_steps.insert(step);
    if (!expected.contains(step)) return "step " + std::to_string(step) + " is not in the reference";
    for (const char* key : {"loss", "grad_norm", "lr", "epoch"}) {
      if (r.at(key).get<double>() != expected.at(step).at(key).get<double>()) {
        return "step " + std::to_string(step) + ": " + key + " " + r.at(key).dump() +
               " != " + expected.at(step).at(key).dump();
      }
    }
  }
  if (seen_steps.size() != expected.size()) {
    return std::to_string(seen_steps.size()) + " steps logged, the reference has " + std::to_string(expected.size());
  }
  auto eval_a = records(reference, "eval"), eval_b = records(run, "eval");
  if (eval_b.empty()) return "no evaluation";
  eval_a.back().erase("time");
  eval_b.back().erase("time");
  if (eval_a.back() != eval_b.back()) return "final evaluation " + eval_b.back().dump() + " != " + eval_a.back().dump();

  const auto a_dir = resolve_checkpoint(reference, reference.string());
  const auto b_dir = resolve_checkpoint(run, run.string());
  if (a_dir.filename() != b_dir.filename()) return "final checkpoint " + b_dir.string() + " vs " + a_dir.string();
  const auto a = read_manifest(a_dir), b = read_manifest(b_dir);
  if (a.trainer.step != b.trainer.step || a.trainer.epoch != b.trainer.epoch || a.trainer.loader != b.trainer.loader) {
    return "final trainer state differs";
  }
  const auto tensors = json::parse(std::ifstream(a_dir / kManifestFile)).at("tensors");
  const auto dense_a = h5::File::open(a_dir / kDenseFile, ""), dense_b = h5::File::open(b_dir / kDenseFile, "");
  const auto emb = embedding_file_name(0, 1);
  const auto emb_a = h5::File::open(a_dir / emb, ""), emb_b = h5::File::open(b_dir / emb, "");
  for (const auto& [name, shape] : tensors.items()) {
    std::string diff;
    if (name.rfind("model/", 0) == 0) diff = compare_dataset<float>(dense_a, dense_b, "/" + name);
    if (name.rfind("emb/", 0) == 0) diff = compare_dataset<float>(emb_a, emb_b, "/rows/" + name.substr(4));
    if (!diff.empty()) return diff;
  }
  for (const auto& diff :
       {compare_optimizers(dense_a, dense_b), compare_dataset<std::uint8_t>(dense_a, dense_b, "/state/rng"),
        compare_dataset<std::int64_t>(emb_a, emb_b, "/ids")}) {
    if (!diff.empty()) return diff;
  }
  return {};
}

// What a kill left under run_dir/ckpt, e.g. "LATEST=step-000000007 .step-000000008.tmp step-000000006 ...",
// and whether it shows a checkpoint write in progress.
std::pair<std::string, bool> ckpt_state(const fs::path& run_dir) {
  const fs::path root = run_dir / "ckpt";
  if (!fs::exists(root)) return {"no ckpt directory", false};
  std::string latest = "(none)";
  if (fs::exists(root / "LATEST")) {
    std::ifstream in(root / "LATEST");
    std::getline(in, latest);
  }
  std::vector<std::string> names;
  std::string newest;
  bool writing = false;
  for (const auto& e : fs::directory_iterator(root)) {
    const auto name = e.path().filename().string();
    if (name == "LATEST") continue;
    names.push_back(name);
    if (name.front() == '.') writing = true;  // a temporary, a set-aside copy, a LATEST being replaced
    if (name.rfind("step-", 0) == 0) newest = std::max(newest, name);
  }
  if (!newest.empty() && newest != latest) writing = true;  // renamed, LATEST not yet updated
  std::sort(names.begin(), names.end());
  std::string out = "LATEST=" + latest;
  for (const auto& n : names) out += " " + n;
  return {out, writing};
}

class KillResume : public ::testing::Test {
 protected:
  testing::ScratchDir dir;
};

}  // namespace

TEST_F(KillResume, LatestMissingEmptyOrBinaryContinuesFromTheNewestCompleteCheckpoint) {
  const auto dataset = make_dataset(dir.path());
  auto whole = tiny_setup(dataset, dir / "whole");
  whole.train.ckpt_every = 4;
  train::run_training(whole.train, whole.model, whole.data, "", "");
  auto first = tiny_setup(dataset, dir / "first");
  first.train.ckpt_every = 4;
  first.train.max_steps = 10;  // checkpoints 8 and 10 kept
  train::run_training(first.train, first.model, first.data, "", "");

  const std::string binary("\x00\x01\x02\xffstep\x7f\n\x00\x00\x00", 13);
  struct Case {
    const char* name;
    std::function<void(const fs::path& ckpt)> damage;
    const char* resumed_from;
  };
  const std::vector<Case> cases = {
      {"missing", [](const fs::path& c) { fs::remove(c / "LATEST"); }, "step-000000010"},
      {"empty", [](const fs::path& c) { testing::write_file(c / "LATEST", ""); }, "step-000000010"},
      {"binary", [&](const fs::path& c) { testing::write_file(c / "LATEST", binary); }, "step-000000010"},
      {"binary, newest corrupt",
       [&](const fs::path& c) {
         testing::write_file(c / "LATEST", binary);
         testing::write_file(c / "step-000000010" / kDenseFile, "corrupt");
       },
       "step-000000008"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto run = dir / (std::string("resume-") + c.name);
    fs::copy(dir / "first", run, fs::copy_options::recursive);
    c.damage(run / "ckpt");
    const auto before = fs::file_size(run / "train-rank-00000.log");
    auto second = tiny_setup(dataset, run);
    second.train.ckpt_every = 4;
    train::run_training(second.train, second.model, second.data, "", "");
    const std::string log = tail_of(run / "train-rank-00000.log", 1 << 20).substr(before);
    EXPECT_NE(
        log.find(std::string("using the newest complete checkpoint, ") + (run / "ckpt" / c.resumed_from).string()),
        std::string::npos)
        << log;
    EXPECT_NE(log.find(std::string("resumed from ") + (run / "ckpt" / c.resumed_from).string()), std::string::npos);
    EXPECT_EQ(log.find("starting fresh"), std::string::npos);
    EXPECT_EQ(compare_runs(dir / "whole", run), "");
  }
}

TEST_F(KillResume, TwentyRandomMomentsResumeBitIdenticalToAnUninterruptedRun) {
  const auto dataset = make_dataset(dir.path());
  std::uint64_t seed = 14;
  if (const char* s = std::getenv("LONGREC_FAULT_SEED"); s != nullptr && *s != '\0') seed = std::stoull(s);
  std::printf("kill -9 trials: seed %llu (LONGREC_FAULT_SEED=%llu replays them)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));

  // The uninterrupted run: its stages (how often each save stage is reached)
  // and how long its training loop takes.
  const auto reference = dir / "reference";
  const pid_t ref_pid =
      spawn_child({reference.string(), dataset.string(), "--count", (dir / "stages").string()}, dir / "reference.log");
  const int ref_status = wait_for(ref_pid);
  ASSERT_TRUE(WIFEXITED(ref_status) && WEXITSTATUS(ref_status) == 0) << tail_of(dir / "reference.log");
  std::vector<std::pair<std::string, int>> stages;
  {
    std::ifstream in(dir / "stages");
    std::string stage;
    int count = 0;
    while (in >> stage >> count) stages.emplace_back(stage, count);
  }
  ASSERT_EQ(stages.size(), 9u) << "save stages seen by the observer";
  const auto steps = records(reference, "train");
  ASSERT_EQ(steps.size(), 16u);
  // Timed kills fall within training: from when the metrics file appears (just
  // before the first step) to a little after the final save.
  const double training = steps.back().at("time").get<double>() - steps.front().at("time").get<double>() + 0.2;

  std::mt19937_64 rng(seed);
  // Even trials stop at a save stage, every stage at least once (a shuffled
  // order), at a random checkpoint; odd trials at a random time.
  std::vector<std::size_t> stage_order(stages.size());
  std::iota(stage_order.begin(), stage_order.end(), 0);
  std::shuffle(stage_order.begin(), stage_order.end(), rng);
  int matched = 0, during_writes = 0;
  constexpr int kTrials = 20;
  for (int trial = 0; trial < kTrials; ++trial) {
    const auto run = dir / ("trial-" + std::to_string(trial));
    const auto log = dir / ("trial-" + std::to_string(trial) + ".log");
    std::string moment;
    bool in_write = false;
    if (trial % 2 == 0) {
      // At a stage of a random checkpoint write: exactly reproducible.
      const auto& [stage, count] = stages[stage_order[static_cast<std::size_t>(trial / 2) % stage_order.size()]];
      const int k = 1 + static_cast<int>(rng() % static_cast<std::uint64_t>(count));
      moment = "at save stage '" + stage + "' #" + std::to_string(k) + " of " + std::to_string(count);
      in_write = stage != "cleaned";
      const int status =
          wait_for(spawn_child({run.string(), dataset.string(), "--kill", stage, std::to_string(k)}, log));
      ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
          << moment << ": " << describe_status(status) << "\n"
          << tail_of(log);
    } else {
      // At a random time of training: anywhere, mid-write of a file included.
      double delay = std::uniform_real_distribution<double>(0, 1)(rng) * training;
      for (int attempt = 0;; ++attempt) {
        fs::remove_all(run);
        const pid_t pid = spawn_child({run.string(), dataset.string()}, log);
        int status = 0;
        bool exited = false;
        const auto poll_until = [&](const std::function<bool()>& done) {
          while (!done()) {
            if (::waitpid(pid, &status, WNOHANG) == pid) {
              exited = true;
              return;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(500));
          }
        };
        poll_until([&] { return fs::exists(run / "metrics-rank-00000.jsonl"); });
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(delay);
        if (!exited) poll_until([&] { return std::chrono::steady_clock::now() >= deadline; });
        if (!exited) {
          ::kill(pid, SIGKILL);
          status = wait_for(pid);
        }
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) break;
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe_status(status) << "\n" << tail_of(log);
        ASSERT_LT(attempt, 4) << "the run finished before every kill";
        delay *= 0.7;  // finished first (a loaded machine runs slower): earlier
      }
      char text[64];
      std::snprintf(text, sizeof text, "%.3f s into training", delay);
      moment = text;
    }
    const auto [state, writing] = ckpt_state(run);
    in_write = in_write || writing;
    during_writes += in_write ? 1 : 0;
    const int status = wait_for(spawn_child({run.string(), dataset.string()}, log));
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "resume after a kill " << moment << " (" << state << "): " << describe_status(status) << "\n"
        << tail_of(log);
    const std::string diff = compare_runs(reference, run);
    matched += diff.empty() ? 1 : 0;
    std::printf("trial %2d: kill -9 %s%s | left %s | resumed: %s\n", trial, moment.c_str(),
                in_write ? " (in a checkpoint write)" : "", state.c_str(),
                diff.empty() ? "bit-identical" : diff.c_str());
    EXPECT_EQ(diff, "") << "trial " << trial << ", kill " << moment;
    if (diff.empty()) fs::remove_all(run);
  }
  std::printf("kill -9 at %d moments (seed %llu, %d in a checkpoint write): %d/%d resumed bit-identical\n", kTrials,
              static_cast<unsigned long long>(seed), during_writes, matched, kTrials);
  EXPECT_EQ(matched, kTrials);
}

}  // namespace longrec::ckpt

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--train-child") return longrec::ckpt::child_main(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
