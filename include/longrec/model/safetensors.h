// The Hugging Face safetensors format, torch-free (library longrec_safetensors:
// links longrec_core alone; fuzzed and sanitized). LibTorch conversions are in
// safetensors_torch.h.
//
// A file is
//   8 bytes   N, little-endian u64: the header's length (at most 100 MB here)
//   N bytes   a JSON object (UTF-8, starting with '{', space padded):
//               "__metadata__": {string: string} (optional)
//               "<tensor>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
//   the rest  the data section; offsets are relative to its start.
// parse_safetensors_header checks what the reference reader checks and a bit
// more: known dtypes, non-negative dimensions whose product does not overflow,
// end - begin == elements * dtype size, tensors covering the data section
// exactly (in offset order, contiguous, no overlap, no trailing bytes),
// no duplicate or unknown keys. Every refusal is a DataError
// "<source>: tensor '<name>': ..." (or the header key at fault).
//
// A checkpoint directory holds model.safetensors, or shards listed by
// model.safetensors.index.json ({"metadata": {...}, "weight_map": {tensor: file}}).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace longrec::model {

enum class SafetensorsDtype { BOOL, U8, I8, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, F8_E4M3, F8_E5M2 };

inline constexpr std::uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;
inline constexpr const char* kSafetensorsSingleFile = "model.safetensors";
inline constexpr const char* kSafetensorsIndexFile = "model.safetensors.index.json";

std::string_view dtype_name(SafetensorsDtype dtype);
std::size_t dtype_size(SafetensorsDtype dtype);
std::optional<SafetensorsDtype> parse_dtype(std::string_view name);

using TensorShape = std::vector<std::int64_t>;

struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::F32;
  TensorShape shape;
  std::uint64_t begin = 0, end = 0;  // within the data section
  std::int64_t numel() const;
};

struct SafetensorsHeader {
  std::map<std::string, std::string> metadata;
  std::vector<SafetensorsTensor> tensors;  // in data-offset order
  std::uint64_t data_start = 0;            // the data section's offset in the file: 8 + N
  std::uint64_t file_size = 0;

  const SafetensorsTensor* find(const std::string& name) const;  // nullptr when absent
  std::map<std::string, TensorShape> shapes() const;
  // The tensor's bytes inside `file_bytes` (the bytes the header was parsed from).
  std::string_view bytes_of(std::string_view file_bytes, const SafetensorsTensor& tensor) const;
};

// Parses and checks the whole layout of `file_bytes`; `source` (a path) leads every message.
SafetensorsHeader parse_safetensors_header(std::string_view file_bytes, const std::string& source);

// A read-only memory mapping of a whole file (RAII). SystemError names the file.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  std::string_view bytes() const { return {static_cast<const char*>(data_), size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  void release() noexcept;
  std::filesystem::path path_;
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

// One mapped, checked safetensors file.
struct SafetensorsFile {
  MappedFile mapping;
  SafetensorsHeader header;
  std::string_view bytes(const SafetensorsTensor& tensor) const { return header.bytes_of(mapping.bytes(), tensor); }
};
SafetensorsFile read_safetensors(const std::filesystem::path& path);

// What the writer takes: `bytes` (little-endian elements) must hold exactly
// numel * dtype_size bytes.
struct SafetensorsTensorData {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::F32;
  TensorShape shape;
  std::string_view bytes;
};
// Writes header (compact JSON with sorted keys, padded with spaces to a
// multiple of 8 bytes, as the reference writer does) and data, tensors in the
// given order. Error (naming the tensor) on a duplicate or reserved name or a
// byte count that does not fit the shape.
void write_safetensors(std::ostream& out, const std::vector<SafetensorsTensorData>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// The same into `path`, atomically (temporary + fsync + rename).
void write_safetensors(const std::filesystem::path& path, const std::vector<SafetensorsTensorData>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes a checkpoint directory's weights as transformers does: one
// model.safetensors when all bytes fit in `max_shard_bytes`, else shards
// model-0000i-of-0000n.safetensors (tensors in the given order, a new shard
// when the next tensor would pass the limit; a larger tensor gets a shard of
// its own), each with `metadata`, then model.safetensors.index.json
// ({"metadata": {"total_size": bytes}, "weight_map": ...}) last. Every file is
// written atomically; the layout not written (a stale index or single file)
// is removed so that SafetensorsCheckpoint::open reads what was written.
// Returns the file names written, the index last.
std::vector<std::string> write_safetensors_checkpoint(const std::filesystem::path& directory,
                                                      const std::vector<SafetensorsTensorData>& tensors,
                                                      const std::map<std::string, std::string>& metadata = {},
                                                      std::uint64_t max_shard_bytes = 5'000'000'000);

// Compares what a file holds with what a model expects: one DataError naming
// every missing, unexpected and wrong-shape tensor (e.g. "<source>: missing
// tensor 'a'; unexpected tensor 'b'; tensor 'c' has shape [2, 3], expected [3, 2]").
void check_tensors(const std::map<std::string, TensorShape>& found, const std::map<std::string, TensorShape>& expected,
                   const std::string& source);
void check_tensors(const SafetensorsHeader& header, const std::map<std::string, TensorShape>& expected,
                   const std::string& source);

// model.safetensors.index.json: tensor -> shard file name (plain names in the
// same directory). Metadata values that are not strings (total_size) are kept
// as their JSON text.
struct SafetensorsIndex {
  std::map<std::string, std::string> metadata;
  std::map<std::string, std::string> weight_map;
  std::vector<std::string> files() const;  // distinct, sorted
};
SafetensorsIndex parse_safetensors_index(std::string_view text, const std::string& source);

// A checkpoint directory: model.safetensors.index.json and its shards if the
// index exists, else model.safetensors. Every shard is mapped and checked
// against the index: a mapped file that does not exist, a tensor mapped to a
// shard that lacks it and a shard's tensor the index does not map are refused,
// each named. Tensor names are unique across the checkpoint.
class SafetensorsCheckpoint {
 public:
  static SafetensorsCheckpoint open(const std::filesystem::path& directory);

  std::map<std::string, TensorShape> shapes() const;
  const SafetensorsTensor& tensor(const std::string& name) const;  // DataError when absent
  std::string_view bytes(const std::string& name) const;
  // The file holding the tensor (for messages).
  const std::filesystem::path& file_of(const std::string& name) const;
  const std::filesystem::path& directory() const { return directory_; }

 private:
  struct Entry {
    std::size_t file;
    const SafetensorsTensor* tensor;
  };
  const Entry& entry(const std::string& name) const;
  std::filesystem::path directory_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Entry> entries_;
};

}  // namespace longrec::model
