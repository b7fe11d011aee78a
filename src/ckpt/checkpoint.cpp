#include "longrec/ckpt/checkpoint.h"

#include <nlohmann/json.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <fstream>
#include <sstream>

#include <fmt/ranges.h>

#include "longrec/core/checksum.h"
#include "longrec/core/error.h"
#include "longrec/core/atomic_file.h"
#include "longrec/core/log.h"
#include "longrec/data/h5.h"
#include "longrec/distributed/communicator.h"

namespace longrec::ckpt {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string embedding_file(int rank, int world) { return embedding_file_name(rank, world); }

fault_injection::SaveObserver save_observer = nullptr;
void reached(const char* stage, std::int64_t step) {
  if (save_observer != nullptr) save_observer(stage, step);
}

// N of a "step-N" directory name; -1 for any other name.
std::int64_t step_of(const std::string& name) {
  if (name.rfind("step-", 0) != 0 || name.size() == 5) return -1;
  std::int64_t step = 0;
  for (std::size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || i > 20) return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

// A float32 copy on the CPU, flat, for HDF5.
std::vector<float> flat_floats(const torch::Tensor& t) {
  auto cpu = t.detach().to(torch::kCPU, torch::kFloat32).contiguous().reshape({-1});
  return std::vector<float>(cpu.data_ptr<float>(), cpu.data_ptr<float>() + cpu.numel());
}

std::vector<std::uint8_t> bytes_of(const std::string& s) { return std::vector<std::uint8_t>(s.begin(), s.end()); }

std::string serialize_optimizer(torch::optim::Optimizer& optimizer) {
  std::ostringstream out;
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  archive.save_to(out);
  return out.str();
}

std::string serialize_rng() {
  auto state = at::detail::getDefaultCPUGenerator().get_state();
  return std::string(reinterpret_cast<const char*>(state.data_ptr<std::uint8_t>()), state.numel());
}

}  // namespace

namespace fault_injection {
void set_save_observer(SaveObserver observer) { save_observer = observer; }
}  // namespace fault_injection

namespace {

// Removes what a failed save wrote (rank 0: the temporary directory; other
// ranks: their own file), so that a full disk leaves no partial checkpoint.
class RemoveUnlessSaved {
 public:
  explicit RemoveUnlessSaved(fs::path path) : path_(std::move(path)) {}
  ~RemoveUnlessSaved() {
    std::error_code ignored;
    if (!saved_) fs::remove_all(path_, ignored);
  }
  void saved() { saved_ = true; }

 private:
  fs::path path_;
  bool saved_ = false;
};

// A string through the communicator (fixed width; checksums are short hex).
std::vector<std::string> gather_strings(distributed::Communicator& comm, const std::string& value, torch::Device wire) {
  constexpr std::int64_t kWidth = 64;
  if (static_cast<std::int64_t>(value.size()) > kWidth) throw Error(fmt::format("'{}' is too long to gather", value));
  auto bytes = torch::zeros({kWidth}, torch::kUInt8);
  std::memcpy(bytes.data_ptr<std::uint8_t>(), value.data(), value.size());
  const auto all = comm.all_gather(bytes.to(wire)).to(torch::kCPU).contiguous();
  std::vector<std::string> out;
  for (int r = 0; r < comm.world(); ++r) {
    const auto* first = reinterpret_cast<const char*>(all.data_ptr<std::uint8_t>()) + r * kWidth;
    out.emplace_back(first, strnlen(first, kWidth));
  }
  return out;
}

}  // namespace

fs::path save_checkpoint(const fs::path& run_dir, const Manifest& manifest, model::SequentialRecommender& model,
                         torch::optim::Optimizer& optimizer, model::ItemTable& items, int keep,
                         distributed::Communicator& comm) {
  const int rank = comm.rank(), world = comm.world();
  const auto wire = comm.wire_device(model.parameters().front().device());
  const fs::path root = run_dir / "ckpt";
  const std::string name = step_directory_name(manifest.trainer.step);
  distributed::CollectiveLabel label(comm, fmt::format("checkpoint {}", name));
  const fs::path final_dir = root / name;
  // One writer per job: the temporary directory is named by the step alone,
  // so that every rank writes into the same one.
  const fs::path temporary = root / fmt::format(".{}.tmp", name);
  if (rank == 0) {
    fs::create_directories(root);
    fs::remove_all(temporary);
    fs::create_directories(temporary);
    reached("temporary", manifest.trainer.step);
  }
  comm.barrier();
  // Harmless where it exists; makes it visible on file systems that cache lookups.
  fs::create_directories(temporary);
  RemoveUnlessSaved cleanup(rank == 0 ? temporary : temporary / embedding_file(rank, world));

  json tensors = json::object();
  {
    // This rank's rows by global id, so that a checkpoint can be re-sharded by id.
    const auto file_name = embedding_file(rank, world);
    auto file = h5::File::create(temporary / file_name);
    const auto ids = items.owned_ids().to(torch::kCPU).contiguous();
    file.write<std::int64_t>(
        "/ids", std::vector<std::int64_t>(ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + ids.numel()));
    file.create_group("/rows");
    for (const auto& [state_name, rows] : items.owned_state()) {
      file.write<float>("/rows/" + state_name, flat_floats(rows));
      auto shape = rows.sizes().vec();
      shape[0] = manifest.num_items;  // over all ranks
      tensors["emb/" + state_name] = shape;
    }
    file.close();  // flushed and closed, checked
  }
  fsync_path(temporary / embedding_file(rank, world));
  if (rank == 0) reached("rank-file", manifest.trainer.step);
  const auto checksums = gather_strings(comm, file_checksum(temporary / embedding_file(rank, world)), wire);

  if (rank == 0) {
    // Dense parameters and their optimizer state are the same on every rank.
    {
      auto dense = h5::File::create(temporary / kDenseFile);
      dense.create_group("/model");
      for (const auto& p : model.named_parameters()) {
        dense.write<float>("/model/" + p.key(), flat_floats(p.value()));
        tensors["model/" + p.key()] = p.value().sizes().vec();
      }
      dense.create_group("/state");
      dense.write<std::uint8_t>("/state/optimizer", bytes_of(serialize_optimizer(optimizer)));
      dense.write<std::uint8_t>("/state/rng", bytes_of(serialize_rng()));
      dense.close();
    }
    reached("dense", manifest.trainer.step);
    json m;
    m["format"] = kCheckpointFormat;
    m["version"] = kCheckpointVersion;
    m["step"] = manifest.trainer.step;
    m["epoch"] = manifest.trainer.epoch;
    m["loader"] = {{"epoch", manifest.trainer.loader.epoch}, {"batch", manifest.trainer.loader.batch}};
    m["batches_per_epoch"] = manifest.batches_per_epoch;
    m["world_size"] = world;
    m["history_window"] = manifest.history_window;
    m["num_items"] = manifest.num_items;
    m["model"] = json::parse(model::model_config_to_json(manifest.model));
    m["config_ini"] = manifest.config_ini;
    m["dataset"] = manifest.dataset;
    m["tensors"] = tensors;
    if (const auto& sel = manifest.trainer.selection; !sel.metric.empty()) {
      m["selection"] = {{"metric", sel.metric},
                        {"best_step", sel.best_step},
                        {"best_epoch", sel.best_epoch},
                        {"best_value", sel.best_value},
                        {"evals_since_best", sel.evals_since_best},
                        {"last_eval_step", sel.last_eval_step}};
    }
    json files = json::object();
    files[kDenseFile] = file_checksum(temporary / kDenseFile);
    for (int r = 0; r < world; ++r) files[embedding_file(r, world)] = checksums[static_cast<std::size_t>(r)];
    m["files"] = files;
    const std::string sealed = seal_manifest(m.dump());
    // What resume will check, checked now: a writer bug fails here, not on resume.
    parse_manifest(sealed, (temporary / kManifestFile).string());
    fsync_path(temporary / kDenseFile);
    write_file_atomically(temporary / kManifestFile, [&](std::ostream& out) { out << sealed; });
    fsync_path(temporary);
    reached("manifest", manifest.trainer.step);

    // Commit. A kill at any point leaves a complete checkpoint of this step or
    // of the one before: LATEST's, or (after "set-aside") .step-N.old, which
    // resolve_checkpoint falls back to when LATEST names a missing directory.
    const fs::path previous = root / fmt::format(".{}.old", name);
    if (fs::exists(final_dir)) {
      // The same step saved again (e.g. the final save right after a periodic
      // one): the committed directory moves aside. A .old beside it is a
      // leftover of an interrupted save; without one, .old is the last
      // committed copy of this step and stays until the new one is in place.
      fs::remove_all(previous);
      fs::rename(final_dir, previous);
      reached("set-aside", manifest.trainer.step);
    }
    fs::rename(temporary, final_dir);
    cleanup.saved();
    fsync_path(root);
    reached("renamed", manifest.trainer.step);

    // LATEST last: it only ever names a complete checkpoint.
    write_file_atomically(root / "LATEST", [&](std::ostream& out) { out << name << '\n'; });
    fsync_path(root);
    reached("latest", manifest.trainer.step);
    fs::remove_all(previous);

    // BEST (train.select_by) names the best checkpoint so far: this one or an
    // earlier one, which the retention below keeps. A resumed run rewrites it
    // from its own state (a BEST of the abandoned continuation would name a
    // step this run has not reached, or has replaced).
    const auto& selection = manifest.trainer.selection;
    std::string best_name;
    if (!selection.metric.empty() && selection.best_step >= 0) {
      best_name = step_directory_name(selection.best_step);
      if (!fs::is_directory(root / best_name)) {
        log::warn("{}: the best checkpoint so far (step {}, {} {:.6g}) is gone; {} not written", root.string(),
                  selection.best_step, selection.metric, selection.best_value, kBestFile);
        best_name.clear();
      }
    }
    if (!best_name.empty()) {
      write_file_atomically(root / kBestFile, [&](std::ostream& out) { out << best_name << '\n'; });
      fsync_path(root);
    } else if (fs::exists(root / kBestFile)) {
      fs::remove(root / kBestFile);
    }
    reached("best", manifest.trainer.step);

    // The newest `keep` checkpoints up to this one stay (newer ones, of an
    // interrupted run resumed from an older checkpoint, are replaced when
    // training reaches their step), and leftovers of interrupted saves go.
    std::vector<std::pair<std::int64_t, fs::path>> steps;
    std::vector<fs::path> leftovers;
    for (const auto& entry : fs::directory_iterator(root)) {
      const std::string entry_name = entry.path().filename().string();
      // A LATEST being replaced when a save was killed (write_file_atomically's temporary).
      if (entry.is_regular_file() &&
          (entry_name.rfind(".LATEST.tmp-", 0) == 0 || entry_name.rfind(fmt::format(".{}.tmp-", kBestFile), 0) == 0)) {
        leftovers.push_back(entry.path());
      }
      if (!entry.is_directory()) continue;
      // The best checkpoint is not counted among the newest `keep`, and stays.
      if (const auto step = step_of(entry_name);
          step >= 0 && step <= manifest.trainer.step && entry_name != best_name) {
        steps.emplace_back(step, entry.path());
      }
      for (const char* suffix : {".tmp", ".old"}) {
        const std::string tail(suffix);
        if (entry_name.size() > tail.size() + 1 && entry_name.front() == '.' &&
            entry_name.compare(entry_name.size() - tail.size(), tail.size(), tail) == 0) {
          const auto step = step_of(entry_name.substr(1, entry_name.size() - tail.size() - 1));
          if (step >= 0 && step <= manifest.trainer.step) leftovers.push_back(entry.path());
        }
      }
    }
    std::sort(steps.begin(), steps.end());
    for (std::size_t i = 0; i + static_cast<std::size_t>(keep) < steps.size(); ++i) fs::remove_all(steps[i].second);
    for (const auto& leftover : leftovers) fs::remove_all(leftover);
    reached("cleaned", manifest.trainer.step);
  }
  comm.barrier();  // no rank goes on before the checkpoint is complete
  return final_dir;
}

void check_compatible(const Manifest& manifest, const model::ModelConfig& config, std::int64_t num_items,
                      const fs::path& checkpoint) {
  model::check_same_architecture(manifest.model, config, checkpoint.string());
  if (manifest.num_items != num_items) {
    throw ConfigError("train.dataset", fmt::format("{} has {} items, the dataset has {}: not the same item catalogue",
                                                   checkpoint.string(), manifest.num_items, num_items));
  }
}

void load_checkpoint(const fs::path& checkpoint, const Manifest& manifest, model::SequentialRecommender& model,
                     torch::optim::Optimizer* optimizer, model::ItemTable& items) {
  torch::NoGradGuard no_grad;
  const auto dense = h5::File::open(checkpoint / kDenseFile, "the checkpoint is incomplete or corrupt");
  // Read everything first; assign only when all of it is there and fits.
  std::vector<std::pair<torch::Tensor, torch::Tensor>> assignments;
  for (const auto& p : model.named_parameters()) {
    const std::string name = "/model/" + p.key();
    if (!dense.has(name))
      throw DataError(fmt::format("{}: parameter missing; the checkpoint is of another model", dense.where(name)));
    auto values = dense.read<float>(name);
    if (static_cast<std::int64_t>(values.size()) != p.value().numel()) {
      throw DataError(fmt::format("{}: {} values, the model's parameter has {} ({})", dense.where(name), values.size(),
                                  p.value().numel(), fmt::join(p.value().sizes(), "x")));
    }
    assignments.emplace_back(p.value(), torch::tensor(values).reshape(p.value().sizes()));
  }
  // The rows this process holds, gathered by id from the rank files of the
  // saved world (any size): its own file when the world is the same, else
  // every file, keeping the ids it owns now.
  std::map<std::string, torch::Tensor> embedding_state;
  {
    const auto owned = items.owned_ids().to(torch::kCPU);
    const auto N = owned.size(0);
    auto position = torch::full({manifest.num_items + 1}, -1, torch::kInt64);  // global id -> owned row
    position.index_put_({owned}, torch::arange(N, torch::kInt64));
    auto filled = torch::zeros({N}, torch::kBool);
    std::vector<int> files;
    for (int r = 0; r < manifest.world_size; ++r) files.push_back(r);
    const auto current = items.owned_state();
    for (const int r : files) {
      const auto file = h5::File::open(checkpoint / embedding_file(r, manifest.world_size),
                                       "the checkpoint is incomplete or corrupt");
      auto ids = torch::tensor(file.read<std::int64_t>("/ids"), torch::kInt64);
      if (ids.numel() > 0 &&
          (ids.min().item<std::int64_t>() < 1 || ids.max().item<std::int64_t>() > manifest.num_items)) {
        throw DataError(fmt::format("{}: /ids outside 1..{}", file.path().string(), manifest.num_items));
      }
      const auto at = position.index_select(0, ids);
      const auto mine = at >= 0;
      if (!mine.any().item<bool>()) continue;
      const auto rows_here = at.masked_select(mine);
      filled.index_fill_(0, rows_here, true);
      for (const auto& [state_name, tensor] : current) {
        // Evaluation needs the table only; resuming needs the optimizer state too.
        if (optimizer == nullptr && state_name != "weight") continue;
        auto values = torch::tensor(file.read<float>("/rows/" + state_name));
        auto shape = tensor.sizes().vec();
        shape[0] = ids.size(0);
        if (values.numel() != std::accumulate(shape.begin(), shape.end(), std::int64_t{1}, std::multiplies<>())) {
          throw DataError(fmt::format("{}: /rows/{} has {} values for {} ids", file.path().string(), state_name,
                                      values.numel(), ids.size(0)));
        }
        auto& out = embedding_state[state_name];
        if (!out.defined()) out = torch::zeros(tensor.sizes(), torch::kFloat32);
        out.index_copy_(0, rows_here, values.reshape(shape).index_select(0, mine.nonzero().squeeze(1)));
      }
    }
    const auto missing = N - filled.sum().item<std::int64_t>();
    if (missing > 0) {
      throw DataError(fmt::format("{}: the rank files hold no rows for {} of this process's {} item ids",
                                  checkpoint.string(), missing, N));
    }
  }
  std::string optimizer_bytes, rng_bytes;
  {
    auto raw = dense.read<std::uint8_t>("/state/optimizer");
    optimizer_bytes.assign(raw.begin(), raw.end());
    auto rng = dense.read<std::uint8_t>("/state/rng");
    rng_bytes.assign(rng.begin(), rng.end());
  }
  for (auto& [target, value] : assignments) target.copy_(value.to(target.device(), target.scalar_type()));
  items.load_owned_state(embedding_state);
  if (optimizer != nullptr) {
    std::istringstream in(optimizer_bytes);
    torch::serialize::InputArchive archive;
    archive.load_from(in);
    optimizer->load(archive);
  }
  auto rng = torch::empty({static_cast<std::int64_t>(rng_bytes.size())}, torch::kUInt8);
  std::memcpy(rng.data_ptr<std::uint8_t>(), rng_bytes.data(), rng_bytes.size());
  auto generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(rng);
}

}  // namespace longrec::ckpt
