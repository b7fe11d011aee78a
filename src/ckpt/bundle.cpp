#include "longrec/ckpt/bundle.h"

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>

#include <fmt/format.h>

#include "longrec/ckpt/checkpoint.h"
#include "longrec/core/checksum.h"
#include "longrec/core/error.h"
#include "longrec/core/atomic_file.h"
#include "longrec/core/log.h"
#include "longrec/data/h5.h"
#include "longrec/data/history_store.h"
#include "longrec/model/item_table.h"
#include "longrec/model/sequential_recommender.h"
#include "longrec/text/tokenizer.h"

namespace longrec::ckpt {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Writes datasets and keeps the CRC-32 of their bytes, in the order written.
class BundleWriter {
 public:
  BundleWriter(h5::File& file, std::string dtype, std::int64_t rows_per_block)
      : file_(file), dtype_(std::move(dtype)), rows_per_block_(rows_per_block) {}

  // A float tensor in the bundle's dtype (flat; its shape goes to /config/tensors).
  void tensor(const std::string& name, const torch::Tensor& value) {
    shapes_[name] = value.sizes().vec();
    if (dtype_ == "bf16") {
      write<std::uint16_t>(name, bf16_bits(value));
    } else {
      write<float>(name, floats(value));
    }
  }

  // The same dataset, bytes and checksum as tensor(), written in blocks of
  // rows of `value` [N, ...] (rows_per_block, or about 4M values) so that `progress` (if
  // any) counts the rows written: compressing a large table takes a while.
  void tensor_rows(const std::string& name, const torch::Tensor& value, log::ProgressBar* progress) {
    shapes_[name] = value.sizes().vec();
    if (dtype_ == "bf16") {
      append_rows<std::uint16_t>(name, value, progress, bf16_bits);
    } else {
      append_rows<float>(name, value, progress, floats);
    }
  }

  template <typename T>
  void write(const std::string& name, const std::vector<T>& values) {
    file_.write<T>(name, std::span<const T>(values));
    checksum_.update(name.data(), name.size());
    checksum_.update(values.data(), values.size() * sizeof(T));
    names_.push_back(name);
  }

  void strings(const std::string& name, const std::vector<std::string>& values) {
    file_.write_strings(name, values);
    checksum_.update(name.data(), name.size());
    for (const auto& v : values) checksum_.update(v.data(), v.size() + 1);  // with the terminating zero
    names_.push_back(name);
  }

  const std::vector<std::string>& names() const { return names_; }
  json shapes() const { return shapes_; }
  std::string checksum() const { return checksum_.hex(); }

 private:
  static std::vector<float> floats(const torch::Tensor& value) {
    auto cpu = value.detach().to(torch::kCPU, torch::kFloat32).contiguous().reshape({-1});
    return std::vector<float>(cpu.data_ptr<float>(), cpu.data_ptr<float>() + cpu.numel());
  }

  // Round to nearest even, as torch does, then keep the upper 16 bits.
  static std::vector<std::uint16_t> bf16_bits(const torch::Tensor& value) {
    auto cpu = value.detach().to(torch::kCPU, torch::kFloat32).contiguous().reshape({-1});
    auto bits = cpu.to(torch::kBFloat16).view(torch::kInt16).to(torch::kInt32).bitwise_and(0xFFFF);
    std::vector<std::uint16_t> values(static_cast<std::size_t>(bits.numel()));
    const auto* src = bits.data_ptr<std::int32_t>();
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<std::uint16_t>(src[i]);
    return values;
  }

  template <typename T, typename Convert>
  void append_rows(const std::string& name, const torch::Tensor& value, log::ProgressBar* progress, Convert convert) {
    const std::int64_t rows = value.dim() > 0 ? value.size(0) : 1;
    const std::int64_t per_row = rows > 0 ? value.numel() / rows : 1;
    const std::int64_t block =
        rows_per_block_ > 0 ? rows_per_block_
                            : std::max<std::int64_t>(1, (std::int64_t{1} << 22) / std::max<std::int64_t>(per_row, 1));
    // The chunking of write(): 64Ki values, or the whole dataset when smaller.
    h5::AppendableDataset<T> dataset(
        file_, name, static_cast<hsize_t>(std::clamp<std::int64_t>(value.numel(), 1, std::int64_t{1} << 16)));
    checksum_.update(name.data(), name.size());
    for (std::int64_t begin = 0; begin < rows; begin += block) {
      const auto values = convert(value.dim() > 0 ? value.slice(0, begin, std::min(rows, begin + block)) : value);
      dataset.append(std::span<const T>(values));
      checksum_.update(values.data(), values.size() * sizeof(T));
      if (progress != nullptr) progress->update(std::min(rows, begin + block));
    }
    dataset.close();
    names_.push_back(name);
  }

  h5::File& file_;
  std::string dtype_;
  std::int64_t rows_per_block_;
  Crc32 checksum_;
  std::vector<std::string> names_;
  json shapes_ = json::object();
};

// The tokenizer file an hllm model was trained with, as bytes, checked to be
// that tokenizer (its CRC-32 is the recorded hllm.tokenizer_checksum).
std::vector<std::uint8_t> trained_tokenizer_bytes(const model::HllmConfig& hllm) {
  std::ifstream in(hllm.tokenizer, std::ios::binary);
  if (!in) throw SystemError(fmt::format("{}: cannot read the model's tokenizer (hllm.tokenizer)", hllm.tokenizer));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw SystemError(fmt::format("{}: read failed", hllm.tokenizer));
  const auto checksum = text::Tokenizer::from_bytes(bytes, hllm.tokenizer).checksum();
  if (checksum != hllm.tokenizer_checksum) {
    throw DataError(fmt::format("{} has checksum {}, the model was trained with a tokenizer of checksum {}",
                                hllm.tokenizer, checksum, hllm.tokenizer_checksum));
  }
  return {bytes.begin(), bytes.end()};
}

}  // namespace

ExportSummary export_bundle(const ExportOptions& options) {
  if (options.dtype != "fp32" && options.dtype != "bf16") {
    throw ConfigError("export.dtype", fmt::format("got '{}', expected fp32 or bf16", options.dtype));
  }
  const fs::path out(options.out);
  if (out.empty()) throw ConfigError("export.out", "an output path is required");
  if (options.rows_per_block < 0) {
    throw ConfigError("export.rows_per_block",
                      fmt::format("got {}, expected 0 (automatic) or more", options.rows_per_block));
  }
  if (fs::exists(out) && !options.overwrite) {
    throw ConfigError("export.out", fmt::format("{} exists; pass --overwrite to replace it", out.string()));
  }
  const auto checkpoint = ckpt::resolve_checkpoint(options.checkpoint, options.checkpoint);
  if (checkpoint.empty()) throw DataError(fmt::format("{}: no complete checkpoint found", options.checkpoint));
  // Verifies every file the manifest lists (each rank's rows included).
  const auto manifest = ckpt::read_manifest(checkpoint);
  const std::string dataset = options.dataset.empty() ? manifest.dataset : options.dataset;
  if (dataset.empty()) {
    throw ConfigError("export.dataset", fmt::format("{} names no dataset: the history store is needed for the raw "
                                                    "item ids",
                                                    checkpoint.string()));
  }
  const data::HistoryStoreReader store(dataset);
  const auto raw_ids = store.item_raw_ids();
  if (static_cast<std::int64_t>(raw_ids.size()) != manifest.num_items) {
    throw ConfigError("export.dataset", fmt::format("{} has {} items, the checkpoint {}: not its catalogue", dataset,
                                                    raw_ids.size(), manifest.num_items));
  }
  const auto text = store.item_text();

  torch::NoGradGuard no_grad;
  model::SequentialRecommender model(manifest.model);
  // The whole table in this process: load_checkpoint gathers every rank's rows by id.
  // The whole table in this process (load_checkpoint gathers every rank's rows by id), or for
  // hllm every item encoded by the trained item LLM: serving needs no item LLM for known items.
  const auto items = model::make_item_vectors(model, manifest.num_items, dataset, torch::kCPU);
  ckpt::load_checkpoint(checkpoint, manifest, model, nullptr, *items);
  torch::Tensor raw_table;  // [I+1, D], row 0 the padding item
  if (auto* text_items = dynamic_cast<model::TextItemVectors*>(items.get())) {
    raw_table = text_items->table();
  } else {
    raw_table = dynamic_cast<model::LocalItemTable&>(*items).weight();
  }

  // hllm: the item LLM's weights and the tokenizer travel together (one is useless without the other).
  const bool item_llm = manifest.model.backbone == "hllm" && options.item_llm && !options.items_only;
  const auto tokenizer = item_llm ? trained_tokenizer_bytes(manifest.model.hllm) : std::vector<std::uint8_t>{};

  ExportSummary summary;
  summary.has_item_llm = item_llm;
  summary.items = manifest.num_items;
  summary.dim = manifest.model.dim;
  summary.step = manifest.trainer.step;
  summary.world_size = manifest.world_size;
  summary.has_text = !text.empty();
  const fs::path temporary = out.parent_path() / fmt::format(".{}.tmp-{}", out.filename().string(), ::getpid());
  try {
    if (!out.parent_path().empty()) fs::create_directories(out.parent_path());
    auto file = h5::File::create(temporary);
    BundleWriter writer(file, options.dtype, options.rows_per_block);
    file.create_group("/config");
    file.create_group("/items");
    writer.strings("/config/model", {model::model_config_to_json(manifest.model)});
    writer.strings("/config/train_ini", {manifest.config_ini});
    writer.strings("/config/source", {json{{"checkpoint", fs::absolute(checkpoint).string()},
                                           {"step", manifest.trainer.step},
                                           {"epoch", manifest.trainer.epoch},
                                           {"world_size", manifest.world_size},
                                           {"dataset", dataset}}
                                          .dump()});
    if (!options.items_only) {
      file.create_group("/model");
      for (const auto& p : model.named_parameters()) {
        if (!item_llm && p.key().rfind("item_encoder.", 0) == 0) continue;
        writer.tensor("/model/" + p.key(), p.value());
        summary.parameters += p.value().numel();
      }
    }
    writer.write<std::int64_t>("/items/ids", raw_ids);
    const auto table = raw_table.slice(0, 1);  // [I, D], without the padding row
    std::optional<log::ProgressBar> progress;
    if (options.show_progress)
      progress.emplace("export: items", manifest.num_items, log::ProgressOptions{.log_lines = true});
    if (options.items_only) {
      writer.tensor_rows("/items/vectors", model::l2_normalize(table), progress ? &*progress : nullptr);
    } else {
      writer.tensor_rows("/items/table", table, progress ? &*progress : nullptr);
    }
    if (progress) progress->finish();
    if (!text.empty()) writer.strings("/items/text", text);
    if (item_llm) writer.write<std::uint8_t>("/items/tokenizer", tokenizer);
    writer.strings("/config/tensors", {writer.shapes().dump()});
    // The list of checksummed datasets is itself not in the checksum.
    std::vector<std::string> names = writer.names();
    file.write_strings("/config/datasets", names);
    file.write_attr("format", std::string(kBundleFormat));
    file.write_attr("version", static_cast<std::int64_t>(item_llm ? 2 : 1));
    file.write_attr("dtype", options.dtype);
    file.write_attr("content", std::string(options.items_only ? "items_only" : "full"));
    file.write_attr("checksum", writer.checksum());
    file.close();  // flushed and closed, checked: a full disk fails here, not at exit
    summary.checksum = writer.checksum();
    fsync_path(temporary);
    fs::rename(temporary, out);
    if (!out.parent_path().empty()) fsync_path(out.parent_path());
  } catch (...) {
    // The HDF5 file is closed (end of the try block); nothing half-written stays behind.
    std::error_code ignored;
    fs::remove(temporary, ignored);
    rethrow_with_note(fmt::format("{} was not written (the partial file is removed)", out.string()));
  }
  summary.path = out;
  summary.bytes = static_cast<std::int64_t>(fs::file_size(out));
  return summary;
}

BundleContent read_bundle(const fs::path& path) {
  const auto file = h5::File::open(path, "expected a longrec serving bundle (longrec export)");
  const auto refuse = [&](const std::string& why) { return DataError(fmt::format("{}: {}", path.string(), why)); };
  if (!file.has_attr("format") || file.read_attr_string("format") != kBundleFormat) {
    throw refuse("not a longrec serving bundle (no format attribute 'longrec-bundle')");
  }
  const auto version = file.read_attr_int("version");
  if (version > kBundleVersion) {
    throw refuse(fmt::format("bundle version {} is newer than this build reads ({}); use a newer longrec", version,
                             kBundleVersion));
  }
  BundleContent out;
  out.dtype = file.read_attr_string("dtype");
  out.content = file.read_attr_string("content");
  out.checksum = file.read_attr_string("checksum");
  const auto one_string = [&](const std::string& name) {
    const auto values = file.read_strings(name);
    if (values.size() != 1) throw refuse(fmt::format("{} holds {} strings, expected 1", name, values.size()));
    return values[0];
  };
  const auto shapes = json::parse(one_string("/config/tensors"), nullptr, false);
  if (shapes.is_discarded()) throw refuse("/config/tensors is not JSON");
  // The checksum over every listed dataset, in order, exactly as written.
  Crc32 crc;
  for (const auto& name : file.read_strings("/config/datasets")) {
    crc.update(name.data(), name.size());
    if (name.rfind("/config/", 0) == 0 || name == "/items/text") {
      const auto values = file.read_strings(name);
      for (const auto& v : values) crc.update(v.data(), v.size() + 1);
      if (name == "/config/model") out.model_json = values.at(0);
      if (name == "/config/train_ini") out.train_ini = values.at(0);
      if (name == "/config/source") out.source_json = values.at(0);
      if (name == "/items/text") out.item_text = values;
    } else if (name == "/items/tokenizer") {
      const auto bytes = file.read<std::uint8_t>(name);
      crc.update(bytes.data(), bytes.size());
      out.tokenizer.assign(bytes.begin(), bytes.end());
    } else if (name == "/items/ids") {
      out.item_ids = file.read<std::int64_t>(name);
      crc.update(out.item_ids.data(), out.item_ids.size() * sizeof(std::int64_t));
    } else {
      std::vector<float> values;
      if (out.dtype == "bf16") {
        const auto raw = file.read<std::uint16_t>(name);
        crc.update(raw.data(), raw.size() * sizeof(std::uint16_t));
        values.resize(raw.size());
        for (std::size_t i = 0; i < raw.size(); ++i) {
          const std::uint32_t word = static_cast<std::uint32_t>(raw[i]) << 16;
          std::memcpy(&values[i], &word, sizeof(float));
        }
      } else {
        values = file.read<float>(name);
        crc.update(values.data(), values.size() * sizeof(float));
      }
      if (!shapes.contains(name)) throw refuse(fmt::format("{} has no shape in /config/tensors", name));
      out.shapes[name] = shapes.at(name).get<std::vector<std::int64_t>>();
      out.tensors[name] = std::move(values);
    }
  }
  if (crc.hex() != out.checksum) {
    throw refuse(fmt::format("checksum {} does not match the stored {}; the file is corrupt", crc.hex(), out.checksum));
  }
  return out;
}

}  // namespace longrec::ckpt
