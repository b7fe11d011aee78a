// Run under `mpirun -np 2` (CTest does). The same training on one process and
// on two ranks must agree: losses step by step, the item rows, the eval
// metrics; and distributed checkpoints resume exactly on the same world size,
// re-shard 2 -> 1 and 1 -> 2, and are refused when a rank file is corrupt.
// The one-process runs are done by rank 0 alone (a world-of-one communicator)
// while the other ranks wait.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "longrec/core/error.h"
#include "longrec/data/h5.h"
#include "support/synthetic_store.h"
#include "longrec/distributed/communicator.h"
#include "longrec/distributed/runtime.h"
#include "longrec/data/history_store.h"
#include "longrec/text/tokenizer.h"
#include "longrec/train/trainer.h"

namespace longrec::train {

namespace fs = std::filesystem;

namespace {

distributed::Communicator& world_comm() {
  static auto c = distributed::make_mpi_communicator();
  return *c;
}

// One scratch directory for the job: rank 0 names it, every rank learns it.
fs::path job_scratch() {
  static fs::path path = [] {
    auto& comm = world_comm();
    auto bytes = torch::zeros({512}, torch::kUInt8);
    if (comm.rank() == 0) {
      const auto p = fs::temp_directory_path() / ("longrec-mpi-train-" + std::to_string(::getpid()));
      fs::remove_all(p);
      fs::create_directories(p);
      const auto s = p.string();
      std::memcpy(bytes.data_ptr<std::uint8_t>(), s.data(), s.size());
    }
    comm.broadcast(bytes, 0);
    return fs::path(reinterpret_cast<const char*>(bytes.data_ptr<std::uint8_t>()));
  }();
  return path;
}

struct Setup {
  TrainConfig train;
  model::ModelConfig model;
  data::LoaderConfig data;
};

fs::path dataset() {
  static fs::path path = [] {
    const auto out = job_scratch() / "synth";
    if (world_comm().rank() == 0) testing::make_synthetic_store(out, 160, 300, 10, 30);
    world_comm().barrier();
    return out;
  }();
  return path;
}

Setup setup(const std::string& run, const std::string& backbone, const std::string& negatives) {
  Setup s;
  s.train.dataset = dataset().string();
  s.train.run_dir = (job_scratch() / run).string();
  s.train.max_steps = 20;
  s.train.log_every = 1;
  s.train.eval_every = 0;  // once, at the end
  s.train.threads = 1;
  s.train.ckpt_every = 10;
  s.train.sparse_optimizer = "adam";
  s.train.sparse_lr = 1e-3;
  s.model.backbone = backbone;
  s.model.dim = 16;
  s.model.blocks = 2;
  s.model.heads = 2;
  s.model.max_len = 24;
  s.model.num_negatives = 16;
  s.model.negatives = negatives;
  // Dropout masks are per rank: the equivalence needs none.
  s.model.dropout = 0;
  s.model.attn_dropout = 0;
  s.data.batch_size = 16;
  s.data.max_len = 24;
  s.data.shuffle_users = 64;
  s.data.read_users = 8;  // 20 chunks: both ranks get rows in most batches
  // SASRec's runs exclude only the 24-event input window from ranking (histories
  // of 10-30 events): the exclusion lists each rank gathers are then not its
  // loader's whole histories, and 2 ranks must still evaluate as one process.
  if (backbone == "sasrec") s.train.eval_protocol.exclude_history = "window";
  return s;
}

// One process: rank 0 alone, the others wait.
void run_one_process(const Setup& s) {
  if (world_comm().rank() == 0) {
    auto single = distributed::make_single_process_communicator();
    run_training(s.train, s.model, s.data, "", "", single.get());
  }
  world_comm().barrier();
}

void run_all_ranks(const Setup& s) { run_training(s.train, s.model, s.data, "", "", &world_comm()); }
TrainResult run_all_ranks_result(const Setup& s) {
  return run_training(s.train, s.model, s.data, "", "", &world_comm());
}

std::vector<nlohmann::json> metrics(const std::string& run, const std::string& kind) {
  std::vector<nlohmann::json> out;
  std::ifstream in(job_scratch() / run / "metrics-rank-00000.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.at("kind") == kind) out.push_back(j);
  }
  return out;
}

std::map<std::int64_t, double> losses(const std::string& run) {
  std::map<std::int64_t, double> out;
  for (const auto& j : metrics(run, "train")) out[static_cast<std::int64_t>(j.at("step").get<double>())] = j.at("loss");
  return out;
}

// Losses of `run` equal those of `reference` at every step `run` logged.
void expect_same_losses(const std::string& run, const std::string& reference, std::size_t steps) {
  if (world_comm().rank() != 0) return;
  const auto got = losses(run), want = losses(reference);
  ASSERT_EQ(got.size(), steps) << run;
  for (const auto& [step, loss] : got) {
    ASSERT_TRUE(want.count(step)) << run << " step " << step;
    EXPECT_NEAR(loss, want.at(step), 1e-5 * std::abs(want.at(step))) << run << " vs " << reference << " step " << step;
  }
}

// Every id's table row in a checkpoint, whatever its world size: [I, D] by id.
torch::Tensor checkpoint_rows(const fs::path& checkpoint, std::int64_t num_items, std::int64_t dim) {
  auto table = torch::full({num_items + 1, dim}, std::nan(""), torch::kFloat32);
  for (const auto& entry : fs::directory_iterator(checkpoint)) {
    if (entry.path().filename().string().rfind("emb-rank-", 0) != 0) continue;
    const auto file = h5::File::open(entry.path(), "test");
    auto ids = torch::tensor(file.read<std::int64_t>("/ids"), torch::kInt64);
    auto rows = torch::tensor(file.read<float>("/rows/weight")).view({ids.size(0), dim});
    table.index_copy_(0, ids, rows);
  }
  return table.slice(0, 1);
}

}  // namespace

class TwoRanks : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(TwoRanks, TrainLikeOneProcessAndCheckpointsReshard) {
  const auto [backbone, negatives] = GetParam();
  const auto tag = backbone + "-" + negatives;
  const auto one = setup(tag + "-one", backbone, negatives);
  const auto two = setup(tag + "-two", backbone, negatives);
  run_one_process(one);
  run_all_ranks(two);

  // 20 steps: the same losses; the same rows of every item; the same metrics.
  expect_same_losses(tag + "-two", tag + "-one", 20);
  if (world_comm().rank() == 0) {
    const auto last = fs::path(one.train.run_dir) / "ckpt" / "step-000000020";
    const auto last_two = fs::path(two.train.run_dir) / "ckpt" / "step-000000020";
    // EXPECT, not ASSERT: rank 0 returning early would leave rank 1 waiting in the next run.
    EXPECT_TRUE(fs::exists(last_two / "emb-rank-00001-of-00002.h5"));
    const auto a = checkpoint_rows(last, 300, 16), b = checkpoint_rows(last_two, 300, 16);
    EXPECT_FALSE(torch::isnan(b).any().item<bool>()) << "an id is missing from the rank files";
    EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-6)) << (a - b).abs().max().item<double>();
    const auto eval_one = metrics(tag + "-one", "eval"), eval_two = metrics(tag + "-two", "eval");
    EXPECT_EQ(eval_one.size(), 1u);
    EXPECT_EQ(eval_two.size(), 1u);
    if (eval_one.size() == 1 && eval_two.size() == 1) {
      EXPECT_EQ(eval_one[0].at("users"), eval_two[0].at("users"));
      for (const auto& [key, value] : eval_one[0].items()) {
        if (!value.is_number() || key == "time") continue;  // the wall clock of the line
        EXPECT_NEAR(value.get<double>(), eval_two[0].at(key).get<double>(), 1e-9) << key;
      }
    }
  }

  // The item ids of step t + 1 travel during step t (train.route_ahead, the
  // default): without it, every loss is the same, bit for bit.
  auto in_turn = setup(tag + "-in-turn", backbone, negatives);
  in_turn.train.route_ahead = false;
  run_all_ranks(in_turn);
  if (world_comm().rank() == 0) EXPECT_EQ(losses(tag + "-in-turn"), losses(tag + "-two"));

  // Resume at step 10 on the same world size (2 -> 2), and re-sharded (2 -> 1, 1 -> 2).
  auto same = setup(tag + "-2to2", backbone, negatives);
  same.train.resume = (fs::path(two.train.run_dir) / "ckpt" / "step-000000010").string();
  run_all_ranks(same);
  expect_same_losses(tag + "-2to2", tag + "-two", 10);

  auto to_one = setup(tag + "-2to1", backbone, negatives);
  to_one.train.resume = same.train.resume;
  run_one_process(to_one);
  expect_same_losses(tag + "-2to1", tag + "-one", 10);

  auto to_two = setup(tag + "-1to2", backbone, negatives);
  to_two.train.resume = (fs::path(one.train.run_dir) / "ckpt" / "step-000000010").string();
  run_all_ranks(to_two);
  expect_same_losses(tag + "-1to2", tag + "-two", 10);
}

INSTANTIATE_TEST_SUITE_P(Backbones, TwoRanks,
                         ::testing::Values(std::make_tuple("hstu", "per_position"),
                                           std::make_tuple("sasrec", "shared")));

// HLLM: the item LLM's and user LLM's parameters are dense (summed over ranks), every rank
// encodes the shared negatives pool it scores against, and each rank owns a slice of the
// catalogue in evaluation: 2 ranks train what one process trains, and resume across world sizes.
TEST(HllmTwoRanks, TrainLikeOneProcessAndResumeAcrossWorldSizes) {
  const auto tokenizer = job_scratch() / "hllm-items.model";
  const auto store_dir = dataset();  // collective the first time: every rank calls it
  std::string error;
  if (world_comm().rank() == 0) {
    try {
      const data::HistoryStoreReader store(store_dir);
      text::train_tokenizer(store.item_text(), 320, tokenizer);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  world_comm().barrier();
  // Every rank sees the same file: all stop here together, or none does.
  ASSERT_TRUE(fs::exists(tokenizer)) << error;
  const auto hllm_setup = [&](const std::string& run) {
    auto s = setup(run, "hllm", "shared");
    s.model.hllm.tokenizer = tokenizer.string();
    s.model.hllm.kv_heads = 1;
    s.model.hllm.item_blocks = 1;
    s.model.hllm.prompt = "";
    s.model.hllm.max_text_len = 12;
    s.model.hllm.encode_chunk = 64;
    s.train.lr = 3e-3;
    return s;
  };
  const auto one = hllm_setup("hllm-one");
  const auto two = hllm_setup("hllm-two");
  run_one_process(one);
  run_all_ranks(two);
  expect_same_losses("hllm-two", "hllm-one", 20);
  if (world_comm().rank() == 0) {
    // (The loss need not fall here: from random weights the item vectors start nearly equal, so
    // HLLM masks most negatives as near duplicates of the positive at first.)
    for (const auto& [step, loss] : losses("hllm-one")) EXPECT_TRUE(std::isfinite(loss)) << step;
    const auto eval_one = metrics("hllm-one", "eval"), eval_two = metrics("hllm-two", "eval");
    EXPECT_EQ(eval_one.size(), 1u);
    EXPECT_EQ(eval_two.size(), 1u);
    if (eval_one.size() == 1 && eval_two.size() == 1) {
      EXPECT_EQ(eval_one[0].at("users"), eval_two[0].at("users"));
      for (const auto& [key, value] : eval_one[0].items()) {
        if (!value.is_number() || key == "time") continue;
        EXPECT_NEAR(value.get<double>(), eval_two[0].at(key).get<double>(), 1e-9) << key;
      }
    }
  }
  auto to_one = hllm_setup("hllm-2to1");
  to_one.train.resume = (fs::path(two.train.run_dir) / "ckpt" / "step-000000010").string();
  run_one_process(to_one);
  expect_same_losses("hllm-2to1", "hllm-one", 10);
}

TEST(DistributedCheckpoint, ACorruptRankFileIsRefusedOnEveryRankWithTheFileNamed) {
  auto base = setup("corrupt", "hstu", "per_position");
  base.train.max_steps = 5;
  base.train.ckpt_every = 0;
  run_all_ranks(base);
  const auto checkpoint = fs::path(base.train.run_dir) / "ckpt" / "step-000000005";
  const auto victim = checkpoint / "emb-rank-00001-of-00002.h5";
  if (world_comm().rank() == 0) {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(victim) / 2));
    f.put('\x5a');
  }
  world_comm().barrier();
  auto resumed = setup("corrupt-resume", "hstu", "per_position");
  resumed.train.resume = checkpoint.string();
  try {
    run_all_ranks(resumed);
    ADD_FAILURE() << "a corrupt rank file was loaded";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("emb-rank-00001-of-00002.h5"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("corrupt"), std::string::npos) << e.what();
  }
  world_comm().barrier();
  if (world_comm().rank() == 0) fs::remove(victim);
  world_comm().barrier();
  try {
    run_all_ranks(resumed);
    ADD_FAILURE() << "a checkpoint without a rank file was loaded";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("emb-rank-00001-of-00002.h5: missing"), std::string::npos) << e.what();
  }
  world_comm().barrier();
}

// train.select_by with early stopping: two ranks evaluate, select and stop
// exactly as one process (the same validation records, best step and stop
// step), and both ranks of the job take the same decisions.
TEST(SelectionTwoRanks, SelectAndStopLikeOneProcessOnEveryRank) {
  auto one = setup("select-one", "hstu", "per_position");
  auto two = setup("select-two", "hstu", "per_position");
  for (auto* s : {&one, &two}) {
    s->data.split = "last2";
    s->train.select_by = "valid.ndcg@10";
    s->train.early_stop_patience = 1;
    s->train.eval_every = 1;
    s->train.epochs = 6;
    s->train.max_steps = 0;
    s->train.ckpt_every = 0;
    s->train.keep_ckpts = 1;
  }
  TrainResult single;
  if (world_comm().rank() == 0) {
    auto comm = distributed::make_single_process_communicator();
    single = run_training(one.train, one.model, one.data, "", "", comm.get());
  }
  world_comm().barrier();
  const auto result = run_all_ranks_result(two);

  // Every rank's decisions are rank 0's.
  auto mine = torch::tensor({static_cast<double>(result.steps), static_cast<double>(result.best_step),
                             result.best_value, result.stopped_early ? 1.0 : 0.0},
                            torch::kFloat64);
  auto all = world_comm().all_gather(mine).view({world_comm().world(), 4});
  EXPECT_TRUE(torch::equal(all[0], all[1])) << all;
  EXPECT_GE(result.best_step, 0);
  if (world_comm().rank() == 0) {
    EXPECT_EQ(result.steps, single.steps);
    EXPECT_EQ(result.best_step, single.best_step);
    EXPECT_EQ(result.stopped_early, single.stopped_early);
    EXPECT_NEAR(result.best_value, single.best_value, 1e-9);
    const auto a = metrics("select-one", "eval"), b = metrics("select-two", "eval");
    EXPECT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
      EXPECT_EQ(a[i].at("step"), b[i].at("step")) << i;
      EXPECT_EQ(a[i].at("part"), b[i].at("part")) << i;
      EXPECT_NEAR(a[i].at("ndcg@10").get<double>(), b[i].at("ndcg@10").get<double>(), 1e-9) << i;
    }
    // Rank 1's own record of the evaluations: the same figures.
    std::ifstream in(job_scratch() / "select-two" / "metrics-rank-00001.jsonl");
    std::size_t i = 0;
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j.at("kind") != "eval") continue;
      if (i < b.size()) {
        EXPECT_EQ(j.at("ndcg@10"), b[i].at("ndcg@10")) << "rank 1, record " << i;
      }
      ++i;
    }
    EXPECT_EQ(i, b.size());
  }
  world_comm().barrier();
}

}  // namespace longrec::train

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  longrec::distributed::MpiRuntime::start();
  const auto scratch = longrec::train::job_scratch();  // collective: before any rank may skip a test
  const int failed = RUN_ALL_TESTS();
  longrec::train::world_comm().barrier();
  if (longrec::distributed::MpiRuntime::start().topology().rank == 0) std::filesystem::remove_all(scratch);
  return failed;
}
