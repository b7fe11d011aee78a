// The serving bundle (design section 7): one self-contained, versioned HDF5
// file made from a checkpoint of any world size, readable without longrec
// (h5py + numpy, scripts/inspect_bundle.py). Torch-free interface for the CLI.
//
//   /                  attrs: format "longrec-bundle", version (2 with /items/tokenizer, else 1,
//                      so that older readers still read what they can serve), dtype (fp32 | bf16),
//                      content (full | items_only), checksum (CRC-32 of every
//                      dataset below, in the order of /config/datasets)
//   /config/model      model configuration (JSON, one string)
//   /config/train_ini  the training configuration the checkpoint was made with
//   /config/source     checkpoint path, step, epoch, world size, dataset (JSON)
//   /config/tensors    {"dataset name": shape, ...} (datasets are stored flat)
//   /config/datasets   dataset names, in checksum order
//   /model/<param>     every dense parameter (token embeddings included); full only. For hllm
//                      the item LLM (/model/item_encoder.*) only with ExportOptions::item_llm
//   /items/ids         raw item id of internal id k + 1, [I] int64
//   /items/table       the item-embedding rows [I, D] gathered from every shard (full)
//   /items/vectors     the same rows L2-normalised [I, D] (items_only: for an ANN index)
//   /items/text        item titles, when the dataset had them
//   /items/tokenizer   hllm with the item LLM: the SentencePiece model's bytes [B] uint8 (its CRC-32
//                      is hllm.tokenizer_checksum), so that serving encodes new items' texts
// fp32 values are float32; bf16 values are the upper 16 bits of float32 (uint16).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace longrec::ckpt {

inline constexpr const char* kBundleFormat = "longrec-bundle";
inline constexpr int kBundleVersion = 2;

struct ExportOptions {
  std::string checkpoint;      // step directory, LATEST file, ckpt directory or run directory
  std::string out;             // bundle path (.h5)
  std::string dataset;         // history store for the item ids / text (default: the checkpoint's)
  std::string dtype = "fp32";  // fp32 | bf16
  bool items_only = false;
  bool overwrite = false;
  // hllm: the item LLM and the tokenizer too (serving can then add items from their text);
  // without them the bundle ranks its known items only. Ignored for other backbones.
  bool item_llm = true;
  // Progress of the item rows written: a bar on a terminal, else a log line per tenth.
  bool show_progress = false;
  // Item rows per write of /items/table (or /items/vectors); 0: about 4M
  // values. The bundle's bytes and checksum are the same for any value.
  std::int64_t rows_per_block = 0;
};

struct ExportSummary {
  std::filesystem::path path;
  std::int64_t items = 0, dim = 0, parameters = 0, step = 0;
  int world_size = 1;
  bool has_text = false;
  bool has_item_llm = false;  // the item LLM and the tokenizer were written
  std::string checksum;
  std::int64_t bytes = 0;
};

// Writes the bundle atomically (a temporary file renamed into place); refuses
// an incomplete or corrupt checkpoint (every rank file is verified) and a
// dataset whose catalogue differs from the checkpoint's.
ExportSummary export_bundle(const ExportOptions& options);

// A bundle read back and verified (format, version <= kBundleVersion, checksum):
// every dataset as float32 (bf16 widened) or as stored. Throws DataError
// naming the file on any mismatch.
struct BundleContent {
  std::string model_json, train_ini, source_json, dtype, content, checksum;
  std::map<std::string, std::vector<float>> tensors;  // /model/*, /items/table or /items/vectors
  std::map<std::string, std::vector<std::int64_t>> shapes;
  std::vector<std::int64_t> item_ids;  // raw id of internal id k + 1
  std::vector<std::string> item_text;  // empty when none
  std::string tokenizer;               // /items/tokenizer's bytes; empty when none
};
BundleContent read_bundle(const std::filesystem::path& path);

}  // namespace longrec::ckpt
