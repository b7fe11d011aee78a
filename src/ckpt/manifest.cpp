// manifest.json: parse, validate, seal; LATEST and the choice of the
// checkpoint to resume. Torch-free (see manifest.h).
#include "longrec/ckpt/manifest.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <tuple>

#include <fmt/format.h>

#include "longrec/core/checksum.h"
#include "longrec/core/error.h"
#include "longrec/core/log.h"

namespace longrec::ckpt {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string step_directory_name(std::int64_t step) { return fmt::format("step-{:09d}", step); }

std::string embedding_file_name(int rank, int world) {
  return fmt::format("emb-rank-{:05d}-of-{:05d}.h5", rank, world);
}

std::vector<std::string> checkpoint_file_names(int world) {
  std::vector<std::string> names{kDenseFile};
  for (int r = 0; r < world; ++r) names.push_back(embedding_file_name(r, world));
  return names;
}

namespace {

constexpr const char* kChecksumKey = "manifest_checksum";
constexpr int kMaxWorld = 99999;               // the width of the rank files' names
constexpr std::int64_t kMaxCount = 1LL << 53;  // steps, epochs, batches: exact in any JSON reader
constexpr std::int64_t kMaxItems = 1LL << 40;  // far above any catalogue; bounds what a load allocates
constexpr int kMaxDepth = 16;                  // a manifest nests 3 levels

// Bytes as a quoted, printable string: \n, \", \\ and \xNN for the rest; at
// most `limit` bytes shown.
std::string quote_bytes(const std::string& bytes, std::size_t limit = 48) {
  std::string out = "\"";
  for (std::size_t i = 0; i < bytes.size() && i < limit; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  out += '"';
  if (bytes.size() > limit) out += fmt::format(" (and {} more bytes)", bytes.size() - limit);
  return out;
}

// A JSON value in an error message: its type and (shortened) text.
std::string describe(const json& value) {
  return fmt::format("{} {}", value.type_name(), quote_bytes(value.dump(-1, ' ', true), 40));
}

std::string checksum_of(json object) {
  object.erase(kChecksumKey);
  const std::string canonical = object.dump();  // compact, keys sorted (std::map)
  Crc32 crc;
  crc.update(canonical.data(), canonical.size());
  return crc.hex();
}

bool is_crc32_text(const std::string& s) {
  if (s.size() != 14 || s.rfind("crc32:", 0) != 0) return false;
  return std::all_of(s.begin() + 6, s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

json parse_object(const std::string& text, const std::string& source) {
  json m;
  try {
    m = json::parse(text, [&](int depth, json::parse_event_t, json&) {
      if (depth > kMaxDepth)
        throw DataError(fmt::format("{}: malformed manifest (nested deeper than {} levels)", source, kMaxDepth));
      return true;
    });
  } catch (const json::exception& e) {
    throw DataError(fmt::format("{}: malformed manifest ({})", source, e.what()));
  }
  if (!m.is_object()) throw DataError(fmt::format("{}: malformed manifest (not a JSON object)", source));
  return m;
}

// Typed access to one JSON object; every error names the source and the key.
class Fields {
 public:
  Fields(const json& object, const std::string& source, std::string prefix = "")
      : object_(object), source_(source), prefix_(std::move(prefix)) {}

  std::string key(const char* name) const { return prefix_ + name; }

  const json& at(const char* name) const {
    const auto it = object_.find(name);
    if (it == object_.end()) throw DataError(fmt::format("{}: key '{}' is missing", source_, key(name)));
    return *it;
  }

  std::int64_t integer(const char* name, std::int64_t min, std::int64_t max) const {
    const json& v = at(name);
    if (!v.is_number_integer()) {
      throw DataError(fmt::format("{}: key '{}' must be an integer, got {}", source_, key(name), describe(v)));
    }
    const bool too_big = v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(max);
    const std::int64_t x = too_big ? max : v.get<std::int64_t>();
    if (too_big || x < min || x > max) {
      throw DataError(fmt::format("{}: key '{}' is {}, expected {}..{}", source_, key(name), v.dump(), min, max));
    }
    return x;
  }

  double number(const char* name) const {
    const json& v = at(name);
    if (!v.is_number() || !std::isfinite(v.get<double>())) {
      throw DataError(fmt::format("{}: key '{}' must be a finite number, got {}", source_, key(name), describe(v)));
    }
    return v.get<double>();
  }

  bool has(const char* name) const { return object_.contains(name); }

  std::string string(const char* name) const {
    const json& v = at(name);
    if (!v.is_string())
      throw DataError(fmt::format("{}: key '{}' must be a string, got {}", source_, key(name), describe(v)));
    return v.get<std::string>();
  }

  const json& object(const char* name) const {
    const json& v = at(name);
    if (!v.is_object())
      throw DataError(fmt::format("{}: key '{}' must be an object, got {}", source_, key(name), describe(v)));
    return v;
  }

 private:
  const json& object_;
  const std::string& source_;
  std::string prefix_;
};

}  // namespace

Manifest parse_manifest(const std::string& text, const std::string& source) {
  const json m = parse_object(text, source);
  const Fields f(m, source);
  {
    const auto format = m.find("format");
    if (format == m.end() || !format->is_string() || format->get<std::string>() != kCheckpointFormat) {
      throw DataError(fmt::format("{}: not a longrec checkpoint manifest (key 'format' is {}, expected \"{}\")", source,
                                  format == m.end() ? "missing" : describe(*format), kCheckpointFormat));
    }
  }
  const std::int64_t version = f.integer("version", 0, INT_MAX);
  if (version == 1) {
    throw DataError(
        fmt::format("{}: checkpoint version 1, written before manifests carried a checksum; this build "
                    "reads version {} only (resume it with the longrec build that wrote it)",
                    source, kCheckpointVersion));
  }
  if (version != kCheckpointVersion) {
    throw DataError(
        fmt::format("{}: checkpoint version {}, this build reads version {}", source, version, kCheckpointVersion));
  }

  Manifest out;
  out.trainer.step = f.integer("step", 0, kMaxCount);
  out.trainer.epoch = f.integer("epoch", 0, kMaxCount);
  const Fields loader(f.object("loader"), source, "loader.");
  out.trainer.loader.epoch = loader.integer("epoch", 0, kMaxCount);
  out.trainer.loader.batch = loader.integer("batch", 0, kMaxCount);
  out.batches_per_epoch = f.integer("batches_per_epoch", 0, kMaxCount);  // 0: a training split without samples
  out.world_size = static_cast<int>(f.integer("world_size", 1, kMaxWorld));
  out.history_window = static_cast<int>(f.integer("history_window", 0, INT_MAX));
  out.num_items = f.integer("num_items", 1, kMaxItems);
  out.config_ini = f.string("config_ini");
  out.dataset = f.string("dataset");
  try {
    out.model = model::model_config_from_json(f.object("model").dump());
  } catch (const DataError& e) {
    throw DataError(fmt::format("{}: key 'model': {}", source, e.what()));
  }
  f.object("tensors");

  // Where the loader stands must be the step: each step takes one batch.
  const auto& t = out.trainer;
  const std::int64_t P = out.batches_per_epoch;
  if (t.loader.batch > P) {
    throw DataError(
        fmt::format("{}: key 'loader.batch' is {}, more than 'batches_per_epoch' {}; the manifest was edited", source,
                    t.loader.batch, P));
  }
  const auto loader_step = static_cast<__int128>(t.loader.epoch) * P + t.loader.batch;
  if (loader_step != t.step) {
    throw DataError(
        fmt::format("{}: key 'step' is {}, but the loader position ('loader.epoch' {}, 'loader.batch' {} of "
                    "{} per epoch) is step {}; the manifest was edited",
                    source, t.step, t.loader.epoch, t.loader.batch, P,
                    loader_step > kMaxCount ? fmt::format("> {}", kMaxCount)
                                            : fmt::format("{}", static_cast<std::int64_t>(loader_step))));
  }
  const bool epoch_done = t.loader.batch == P;
  if (t.epoch != t.loader.epoch && !(epoch_done && t.epoch == t.loader.epoch + 1)) {
    throw DataError(fmt::format(
        "{}: key 'epoch' is {}, but 'loader.epoch' is {} (batch {} of {}): expected {}; the "
        "manifest was edited",
        source, t.epoch, t.loader.epoch, t.loader.batch, P,
        epoch_done ? fmt::format("{} or {}", t.loader.epoch, t.loader.epoch + 1) : fmt::format("{}", t.loader.epoch)));
  }

  // Best-checkpoint selection: optional (checkpoints of runs without
  // train.select_by, and those written before it existed, have none).
  if (f.has("selection")) {
    const Fields sel(f.object("selection"), source, "selection.");
    auto& s = out.trainer.selection;
    s.metric = sel.string("metric");
    if (s.metric.empty()) throw DataError(fmt::format("{}: key 'selection.metric' is empty", source));
    s.best_step = sel.integer("best_step", -1, t.step);
    s.best_epoch = sel.integer("best_epoch", 0, t.epoch);
    s.best_value = sel.number("best_value");
    s.evals_since_best = sel.integer("evals_since_best", 0, kMaxCount);
    s.last_eval_step = sel.integer("last_eval_step", -1, t.step);
    if (s.best_step > s.last_eval_step) {
      throw DataError(
          fmt::format("{}: key 'selection.best_step' is {}, after 'selection.last_eval_step' {}; the manifest was "
                      "edited",
                      source, s.best_step, s.last_eval_step));
    }
  }

  // Every file of a world_size-rank checkpoint, each with its checksum, and nothing else.
  const json& files = f.object("files");
  for (const auto& [name, checksum] : files.items()) {
    if (!checksum.is_string() || !is_crc32_text(checksum.get<std::string>())) {
      throw DataError(fmt::format("{}: key 'files' gives {} the checksum {}, expected \"crc32:<8 hex digits>\"", source,
                                  quote_bytes(name), describe(checksum)));
    }
    out.files[name] = checksum.get<std::string>();
  }
  if (!out.files.contains(kDenseFile)) {
    throw DataError(
        fmt::format("{}: key 'files' does not list {}; every file of the checkpoint must be listed with "
                    "its checksum",
                    source, kDenseFile));
  }
  for (int r = 0; r < out.world_size; ++r) {
    const auto name = embedding_file_name(r, out.world_size);
    if (!out.files.contains(name)) {
      throw DataError(
          fmt::format("{}: key 'files' does not list {}; every file of the checkpoint must be listed with "
                      "its checksum",
                      source, name));
    }
  }
  if (out.files.size() != static_cast<std::size_t>(out.world_size) + 1) {
    for (const auto& [name, checksum] : out.files) {
      bool expected = name == kDenseFile;
      for (int r = 0; !expected && r < out.world_size; ++r) expected = name == embedding_file_name(r, out.world_size);
      if (!expected) {
        throw DataError(fmt::format("{}: key 'files' lists {}, which is not a file of a {}-rank checkpoint", source,
                                    quote_bytes(name), out.world_size));
      }
    }
  }

  // Last, anything else: the checksum of the whole object.
  const std::string stored = f.string(kChecksumKey);
  const std::string actual = checksum_of(m);
  if (stored != actual) {
    throw DataError(
        fmt::format("{}: key '{}' is {}, but the manifest's content has {}; the manifest was edited or is "
                    "corrupt",
                    source, kChecksumKey, quote_bytes(stored), actual));
  }
  return out;
}

std::string seal_manifest(const std::string& text) {
  json m = parse_object(text, "manifest");
  m[kChecksumKey] = checksum_of(m);
  return m.dump(2) + "\n";
}

namespace {

// N of "step-N" (a committed checkpoint) or of ".step-N.old" (one set aside
// while step N was saved again); nullopt for any other name.
std::optional<std::int64_t> step_of_directory(const std::string& name, bool allow_old = true) {
  std::string_view s = name;
  const bool old = allow_old && s.size() > 5 && s.front() == '.' && s.substr(s.size() - 4) == ".old";
  if (old) s = s.substr(1, s.size() - 5);
  if (s.rfind("step-", 0) != 0) return std::nullopt;
  s.remove_prefix(5);
  if (s.empty() || s.size() > 15) return std::nullopt;
  std::int64_t step = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    step = step * 10 + (c - '0');
  }
  return step;
}

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// What a pointer file (run_dir/ckpt/LATEST or BEST) says: a step directory name, or why not.
struct Latest {
  std::string name;     // set when LATEST holds a step directory name
  std::string problem;  // otherwise: "is missing", "is empty", ...
  bool missing = false;
};

Latest read_pointer(const fs::path& path) {
  Latest latest;
  if (!fs::exists(path)) {
    latest.missing = true;
    latest.problem = "is missing";
    return latest;
  }
  if (!fs::is_regular_file(path)) {
    latest.problem = "is not a regular file";
    return latest;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SystemError(fmt::format("{}: cannot be read", path.string()));
  std::string bytes(4096, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  bytes.resize(static_cast<std::size_t>(in.gcount()));
  const auto size = fs::file_size(path);
  std::string name = bytes;
  while (!name.empty() && (name.back() == '\n' || name.back() == '\r' || name.back() == ' ' || name.back() == '\t')) {
    name.pop_back();
  }
  if (bytes.empty()) {
    latest.problem = "is empty";
  } else if (name.empty()) {
    latest.problem = fmt::format("holds only white space: {}", quote_bytes(bytes));
  } else if (!step_of_directory(name, false)) {
    latest.problem = fmt::format("holds {} bytes that are not a step directory name: {}", size, quote_bytes(bytes));
  } else {
    latest.name = name;
  }
  return latest;
}

// The checkpoint of `root` (a ckpt directory). fresh_if_none: an empty path
// when there is no step directory at all (resume=auto), else DataError.
fs::path checkpoint_in(const fs::path& root, bool fresh_if_none) {
  const Latest latest = read_pointer(root / "LATEST");
  if (!latest.name.empty() && fs::is_directory(root / latest.name)) return root / latest.name;
  const std::string why =
      latest.name.empty() ? latest.problem : fmt::format("names {}, which does not exist", latest.name);
  const std::string latest_path = (root / "LATEST").string();

  // Step directories, newest first; at the same step the committed one before one set aside.
  std::vector<std::tuple<std::int64_t, bool, fs::path>> candidates;
  if (fs::is_directory(root)) {
    for (const auto& entry : fs::directory_iterator(root)) {
      if (!entry.is_directory()) continue;
      const auto name = entry.path().filename().string();
      if (const auto step = step_of_directory(name)) candidates.emplace_back(*step, name.front() != '.', entry.path());
    }
  }
  std::sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) { return a > b; });
  if (candidates.empty()) {
    if (!fresh_if_none) throw DataError(fmt::format("{}: no checkpoint: {} {}", root.string(), latest_path, why));
    if (!latest.missing) log::warn("{} {}, and there is no step directory beside it: starting fresh", latest_path, why);
    return {};
  }
  std::vector<std::string> skipped;
  for (const auto& [step, committed, path] : candidates) {
    try {
      read_manifest(path);
    } catch (const Error& e) {
      skipped.push_back(e.what());
      continue;
    }
    log::warn("{} {}: using the newest complete checkpoint, {} (step {}){}", latest_path, why, path.string(), step,
              skipped.empty() ? std::string()
                              : fmt::format("; {} newer step director{} did not verify, the first: {}", skipped.size(),
                                            skipped.size() == 1 ? "y" : "ies", skipped.front()));
    return path;
  }
  throw DataError(
      fmt::format("{} {}, and none of the {} step directories in {} is a complete checkpoint (the newest: "
                  "{}); not starting fresh over them: repair them or move them aside",
                  latest_path, why, candidates.size(), root.string(), skipped.front()));
}

}  // namespace

Manifest read_manifest(const fs::path& checkpoint) {
  const fs::path path = checkpoint / kManifestFile;
  if (!fs::is_regular_file(path)) {
    throw DataError(fmt::format("{}: missing; not a complete longrec checkpoint", path.string()));
  }
  Manifest manifest = parse_manifest(read_all(path), path.string());
  // A directory named for a step holds that step.
  fs::path directory = checkpoint.lexically_normal();
  if (directory.filename().empty()) directory = directory.parent_path();
  const std::string name = directory.filename().string();
  if (const auto step = step_of_directory(name); step && *step != manifest.trainer.step) {
    throw DataError(
        fmt::format("{}: key 'step' is {}, but the checkpoint directory is {}; the manifest was edited or "
                    "the directory renamed",
                    path.string(), manifest.trainer.step, name));
  }
  for (const auto& [file, checksum] : manifest.files) {
    const fs::path data = checkpoint / file;
    if (!fs::exists(data)) throw DataError(fmt::format("{}: missing from the checkpoint", data.string()));
    const std::string actual = file_checksum(data);
    if (actual != checksum) {
      throw DataError(fmt::format("{}: checksum {} does not match the manifest's {}; the file is corrupt",
                                  data.string(), actual, checksum));
    }
  }
  return manifest;
}

fs::path resolve_checkpoint(const fs::path& run_dir, const std::string& resume) {
  if (resume == "auto") return checkpoint_in(run_dir / "ckpt", true);
  const fs::path path(resume);
  if (fs::is_regular_file(path) && path.filename() == "LATEST") return checkpoint_in(path.parent_path(), false);
  if (path.filename() == kBestFile) {
    const Latest best = read_pointer(path);
    if (best.name.empty()) {
      throw DataError(fmt::format("{} {}: no best checkpoint (it is written when train.select_by is set)",
                                  path.string(), best.problem));
    }
    const fs::path directory = path.parent_path() / best.name;
    if (!fs::is_directory(directory)) {
      throw DataError(fmt::format("{} names {}, which does not exist", path.string(), best.name));
    }
    return directory;
  }
  if (!fs::is_directory(path)) throw DataError(fmt::format("{}: checkpoint not found", resume));
  if (fs::exists(path / "LATEST")) return checkpoint_in(path, false);
  if (fs::is_directory(path / "ckpt")) return checkpoint_in(path / "ckpt", false);
  if (!fs::exists(path / kManifestFile)) {
    // A ckpt directory whose LATEST is gone.
    for (const auto& entry : fs::directory_iterator(path)) {
      if (entry.is_directory() && step_of_directory(entry.path().filename().string()))
        return checkpoint_in(path, false);
    }
  }
  return path;  // a checkpoint directory (read_manifest reports what is wrong with it)
}

}  // namespace longrec::ckpt
