#include "longrec/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "longrec/core/atomic_file.h"
#include "longrec/core/error.h"

namespace longrec::model {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; so is this reader");

namespace {

using nlohmann::json;

struct DtypeInfo {
  SafetensorsDtype dtype;
  std::string_view name;
  std::size_t size;
};
constexpr std::array<DtypeInfo, 15> kDtypes{{
    {SafetensorsDtype::BOOL, "BOOL", 1},
    {SafetensorsDtype::U8, "U8", 1},
    {SafetensorsDtype::I8, "I8", 1},
    {SafetensorsDtype::I16, "I16", 2},
    {SafetensorsDtype::U16, "U16", 2},
    {SafetensorsDtype::F16, "F16", 2},
    {SafetensorsDtype::BF16, "BF16", 2},
    {SafetensorsDtype::I32, "I32", 4},
    {SafetensorsDtype::U32, "U32", 4},
    {SafetensorsDtype::F32, "F32", 4},
    {SafetensorsDtype::F64, "F64", 8},
    {SafetensorsDtype::I64, "I64", 8},
    {SafetensorsDtype::U64, "U64", 8},
    {SafetensorsDtype::F8_E4M3, "F8_E4M3", 1},
    {SafetensorsDtype::F8_E5M2, "F8_E5M2", 1},
}};

const DtypeInfo& info(SafetensorsDtype dtype) {
  for (const auto& entry : kDtypes) {
    if (entry.dtype == dtype) return entry;
  }
  LONGREC_CHECK(false, "unknown SafetensorsDtype {}", static_cast<int>(dtype));
  return kDtypes[0];
}

std::string shape_text(const TensorShape& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// A key's name as it may appear in a message: printable, bounded.
std::string named(std::string_view name) {
  std::string out;
  for (const char c : name.substr(0, 200)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      out += fmt::format("\\x{:02x}", byte);
    } else {
      out += c;
    }
  }
  if (name.size() > 200) out += "...";
  return "'" + out + "'";
}

// JSON with duplicate keys refused (nlohmann keeps the last; the reference
// reader would see a different file) and nesting bounded.
json parse_json_strict(std::string_view text, const std::string& source, const char* what) {
  std::vector<std::set<std::string>> keys;
  const json::parser_callback_t check = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth > 16) throw DataError(fmt::format("{}: {} nests deeper than 16 levels", source, what));
    if (event == json::parse_event_t::object_start) keys.emplace_back();
    if (event == json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
    if (event == json::parse_event_t::key && !keys.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(key).second) {
        throw DataError(fmt::format("{}: {} has the key {} twice", source, what, named(key)));
      }
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), check);
  } catch (const json::exception& error) {
    throw DataError(fmt::format("{}: {} is not JSON: {}", source, what, error.what()));
  }
}

std::uint64_t read_u64_le(std::string_view bytes) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  return value;
}

SafetensorsTensor parse_tensor(const std::string& name, const json& entry, const std::string& source) {
  const auto fail = [&](const std::string& problem) {
    return DataError(fmt::format("{}: tensor {}: {}", source, named(name), problem));
  };
  if (!entry.is_object()) throw fail(fmt::format("expected an object, got {}", entry.type_name()));
  for (const auto& [key, value] : entry.items()) {
    (void)value;
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      throw fail(fmt::format("unknown key {}", named(key)));
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) throw fail(fmt::format("has no '{}'", key));
  }
  SafetensorsTensor tensor;
  tensor.name = name;
  const json& dtype = entry.at("dtype");
  if (!dtype.is_string()) throw fail("dtype is not a string");
  const auto parsed = parse_dtype(dtype.get_ref<const std::string&>());
  if (!parsed) throw fail(fmt::format("unsupported dtype {}", named(dtype.get_ref<const std::string&>())));
  tensor.dtype = *parsed;

  const json& shape = entry.at("shape");
  if (!shape.is_array()) throw fail("shape is not an array");
  std::uint64_t elements = 1;
  bool overflow = false;
  for (const json& dim : shape) {
    if (!dim.is_number_integer()) throw fail(fmt::format("shape {} holds a non-integer", shape.dump()));
    if (dim.is_number_unsigned() ? dim.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)
                                 : dim.get<std::int64_t>() < 0) {
      throw fail(fmt::format("shape {} holds a negative or too large dimension", shape.dump()));
    }
    const auto size = static_cast<std::uint64_t>(dim.get<std::int64_t>());
    tensor.shape.push_back(static_cast<std::int64_t>(size));
    overflow = overflow || __builtin_mul_overflow(elements, size, &elements);
  }
  std::uint64_t bytes = 0;
  if (overflow || elements > static_cast<std::uint64_t>(INT64_MAX) ||
      __builtin_mul_overflow(elements, dtype_size(tensor.dtype), &bytes)) {
    throw fail(fmt::format("shape {} has more elements than fit in 64 bits", shape_text(tensor.shape)));
  }

  const json& offsets = entry.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    throw fail(fmt::format("data_offsets {} is not [begin, end] (non-negative integers)", offsets.dump()));
  }
  tensor.begin = offsets[0].get<std::uint64_t>();
  tensor.end = offsets[1].get<std::uint64_t>();
  if (tensor.end < tensor.begin)
    throw fail(fmt::format("data_offsets [{}, {}] end before begin", tensor.begin, tensor.end));
  if (tensor.end - tensor.begin != bytes) {
    throw fail(fmt::format("data_offsets [{}, {}] hold {} bytes, but {} {} needs {}", tensor.begin, tensor.end,
                           tensor.end - tensor.begin, dtype_name(tensor.dtype), shape_text(tensor.shape), bytes));
  }
  return tensor;
}

}  // namespace

std::string_view dtype_name(SafetensorsDtype dtype) { return info(dtype).name; }
std::size_t dtype_size(SafetensorsDtype dtype) { return info(dtype).size; }
std::optional<SafetensorsDtype> parse_dtype(std::string_view name) {
  for (const auto& entry : kDtypes) {
    if (entry.name == name) return entry.dtype;
  }
  return std::nullopt;
}

std::int64_t SafetensorsTensor::numel() const {
  std::int64_t n = 1;
  for (const auto dim : shape) n *= dim;  // checked by the parser / writer
  return n;
}

const SafetensorsTensor* SafetensorsHeader::find(const std::string& name) const {
  for (const auto& tensor : tensors) {
    if (tensor.name == name) return &tensor;
  }
  return nullptr;
}

std::map<std::string, TensorShape> SafetensorsHeader::shapes() const {
  std::map<std::string, TensorShape> out;
  for (const auto& tensor : tensors) out.emplace(tensor.name, tensor.shape);
  return out;
}

std::string_view SafetensorsHeader::bytes_of(std::string_view file_bytes, const SafetensorsTensor& tensor) const {
  LONGREC_CHECK(file_bytes.size() == file_size && tensor.end <= file_size - data_start,
                "tensor '{}' asked of bytes it was not parsed from", tensor.name);
  return file_bytes.substr(data_start + tensor.begin, tensor.end - tensor.begin);
}

SafetensorsHeader parse_safetensors_header(std::string_view file_bytes, const std::string& source) {
  if (file_bytes.size() < 8) {
    throw DataError(fmt::format("{}: {} bytes, fewer than the 8-byte header length (truncated or not safetensors)",
                                source, file_bytes.size()));
  }
  const std::uint64_t header_length = read_u64_le(file_bytes);
  const std::uint64_t available = file_bytes.size() - 8;
  if (header_length > kSafetensorsMaxHeaderBytes) {
    throw DataError(fmt::format("{}: header length {} exceeds the limit of {} bytes (file of {} bytes)", source,
                                header_length, kSafetensorsMaxHeaderBytes, file_bytes.size()));
  }
  if (header_length > available) {
    throw DataError(
        fmt::format("{}: header length {} runs past the end of the file ({} bytes after the length; "
                    "truncated?)",
                    source, header_length, available));
  }
  const std::string_view text = file_bytes.substr(8, header_length);
  if (text.empty() || text.front() != '{') {
    throw DataError(fmt::format("{}: header does not start with '{{' (not safetensors)", source));
  }
  const json header = parse_json_strict(text, source, "header");
  if (!header.is_object()) throw DataError(fmt::format("{}: header is not a JSON object", source));

  SafetensorsHeader out;
  out.data_start = 8 + header_length;
  out.file_size = file_bytes.size();
  const std::uint64_t data_size = file_bytes.size() - out.data_start;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw DataError(fmt::format("{}: __metadata__ is not an object of strings", source));
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          throw DataError(
              fmt::format("{}: __metadata__ key {} is not a string ({})", source, named(key), value.type_name()));
        }
        out.metadata.emplace(key, value.get<std::string>());
      }
      continue;
    }
    out.tensors.push_back(parse_tensor(name, entry, source));
  }
  // In offset order: past the end first (the likely cause: a truncated file; the
  // first tensor cut is named), then the cover.
  std::sort(out.tensors.begin(), out.tensors.end(), [](const auto& a, const auto& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  for (const auto& tensor : out.tensors) {
    if (tensor.end > data_size) {
      throw DataError(
          fmt::format("{}: tensor {}: data_offsets [{}, {}] run past the end of the data section ({} "
                      "bytes; file truncated?)",
                      source, named(tensor.name), tensor.begin, tensor.end, data_size));
    }
  }
  std::uint64_t covered = 0;
  const SafetensorsTensor* previous = nullptr;
  for (const auto& tensor : out.tensors) {
    if (tensor.begin < covered) {
      throw DataError(fmt::format("{}: tensor {}: data_offsets [{}, {}] overlap tensor {} [{}, {}]", source,
                                  named(tensor.name), tensor.begin, tensor.end, named(previous->name), previous->begin,
                                  previous->end));
    }
    if (tensor.begin > covered) {
      throw DataError(
          fmt::format("{}: tensor {}: data_offsets [{}, {}] leave bytes [{}, {}) of the data section to "
                      "no tensor",
                      source, named(tensor.name), tensor.begin, tensor.end, covered, tensor.begin));
    }
    covered = tensor.end;
    previous = &tensor;
  }
  if (covered != data_size) {
    throw DataError(fmt::format("{}: the tensors cover {} bytes of the {}-byte data section: {} trailing bytes", source,
                                covered, data_size, data_size - covered));
  }
  return out;
}

// ---- the mapping ----

MappedFile::MappedFile(const std::filesystem::path& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw SystemError(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
  struct stat status {};
  if (::fstat(fd, &status) != 0) {
    const int error = errno;
    ::close(fd);
    throw SystemError(fmt::format("{}: cannot stat: {}", path.string(), std::strerror(error)));
  }
  if (!S_ISREG(status.st_mode)) {
    ::close(fd);
    throw DataError(fmt::format("{}: not a regular file", path.string()));
  }
  size_ = static_cast<std::size_t>(status.st_size);
  if (size_ > 0) {
    void* data = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data == MAP_FAILED) {
      const int error = errno;
      ::close(fd);
      throw SystemError(fmt::format("{}: cannot map {} bytes: {}", path.string(), size_, std::strerror(error)));
    }
    data_ = data;
  }
  ::close(fd);  // the mapping keeps the file
}

MappedFile::~MappedFile() { release(); }

void MappedFile::release() noexcept {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)), data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  MappedFile mapping(path);
  SafetensorsHeader header = parse_safetensors_header(mapping.bytes(), path.string());
  return SafetensorsFile{std::move(mapping), std::move(header)};
}

// ---- the writer ----

void write_safetensors(std::ostream& out, const std::vector<SafetensorsTensorData>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto& tensor : tensors) {
    if (tensor.name == "__metadata__") throw Error("safetensors writer: '__metadata__' is not a tensor name");
    if (header.contains(tensor.name)) {
      throw Error(fmt::format("safetensors writer: tensor {} given twice", named(tensor.name)));
    }
    std::uint64_t elements = 1;
    for (const auto dim : tensor.shape) {
      if (dim < 0 || __builtin_mul_overflow(elements, static_cast<std::uint64_t>(dim), &elements)) {
        throw Error(
            fmt::format("safetensors writer: tensor {}: bad shape {}", named(tensor.name), shape_text(tensor.shape)));
      }
    }
    if (elements * dtype_size(tensor.dtype) != tensor.bytes.size()) {
      throw Error(fmt::format("safetensors writer: tensor {}: {} bytes given for {} {}", named(tensor.name),
                              tensor.bytes.size(), dtype_name(tensor.dtype), shape_text(tensor.shape)));
    }
    header[tensor.name] = {{"dtype", dtype_name(tensor.dtype)},
                           {"shape", tensor.shape},
                           {"data_offsets", {offset, offset + tensor.bytes.size()}}};
    offset += tensor.bytes.size();
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& error) {  // a name or metadata that is not UTF-8
    throw Error(fmt::format("safetensors writer: header cannot be written as JSON: {}", error.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  std::array<char, 8> length{};
  for (std::size_t i = 0; i < 8; ++i) length[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  out.write(length.data(), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& tensor : tensors) out.write(tensor.bytes.data(), static_cast<std::streamsize>(tensor.bytes.size()));
}

void write_safetensors(const std::filesystem::path& path, const std::vector<SafetensorsTensorData>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_file_atomically(path, [&](std::ostream& out) { write_safetensors(out, tensors, metadata); });
}

std::vector<std::string> write_safetensors_checkpoint(const std::filesystem::path& directory,
                                                      const std::vector<SafetensorsTensorData>& tensors,
                                                      const std::map<std::string, std::string>& metadata,
                                                      std::uint64_t max_shard_bytes) {
  std::vector<std::vector<SafetensorsTensorData>> shards(1);
  std::uint64_t total = 0, in_shard = 0;
  for (const auto& tensor : tensors) {
    if (in_shard > 0 && in_shard + tensor.bytes.size() > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(tensor);
    in_shard += tensor.bytes.size();
    total += tensor.bytes.size();
  }
  std::error_code ignored;
  if (shards.size() == 1) {
    write_safetensors(directory / kSafetensorsSingleFile, tensors, metadata);
    std::filesystem::remove(directory / kSafetensorsIndexFile, ignored);
    return {kSafetensorsSingleFile};
  }
  std::vector<std::string> files;
  json weight_map = json::object();
  for (std::size_t i = 0; i < shards.size(); ++i) {
    files.push_back(fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size()));
    write_safetensors(directory / files.back(), shards[i], metadata);
    for (const auto& tensor : shards[i]) weight_map[tensor.name] = files.back();
  }
  const json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_file_atomically(directory / kSafetensorsIndexFile, [&](std::ostream& out) { out << index.dump(2) << "\n"; });
  std::filesystem::remove(directory / kSafetensorsSingleFile, ignored);
  files.push_back(kSafetensorsIndexFile);
  return files;
}

// ---- checks against a model ----

void check_tensors(const std::map<std::string, TensorShape>& found, const std::map<std::string, TensorShape>& expected,
                   const std::string& source) {
  std::vector<std::string> problems;
  for (const auto& [name, shape] : expected) {
    const auto it = found.find(name);
    if (it == found.end()) {
      problems.push_back(fmt::format("missing tensor {} (expected shape {})", named(name), shape_text(shape)));
    } else if (it->second != shape) {
      problems.push_back(
          fmt::format("tensor {} has shape {}, expected {}", named(name), shape_text(it->second), shape_text(shape)));
    }
  }
  for (const auto& [name, shape] : found) {
    if (!expected.contains(name)) {
      problems.push_back(fmt::format("unexpected tensor {} (shape {})", named(name), shape_text(shape)));
    }
  }
  if (problems.empty()) return;
  std::string message = source + ": ";
  for (std::size_t i = 0; i < problems.size(); ++i) message += (i ? "; " : "") + problems[i];
  throw DataError(message);
}

void check_tensors(const SafetensorsHeader& header, const std::map<std::string, TensorShape>& expected,
                   const std::string& source) {
  check_tensors(header.shapes(), expected, source);
}

// ---- sharded checkpoints ----

std::vector<std::string> SafetensorsIndex::files() const {
  std::set<std::string> files;
  for (const auto& [tensor, file] : weight_map) files.insert(file);
  return {files.begin(), files.end()};
}

SafetensorsIndex parse_safetensors_index(std::string_view text, const std::string& source) {
  const json index = parse_json_strict(text, source, "index");
  if (!index.is_object()) throw DataError(fmt::format("{}: not a JSON object", source));
  SafetensorsIndex out;
  for (const auto& [key, value] : index.items()) {
    if (key == "metadata") {
      if (!value.is_object()) throw DataError(fmt::format("{}: 'metadata' is not an object", source));
      for (const auto& [name, item] : value.items()) {
        out.metadata.emplace(name, item.is_string() ? item.get<std::string>() : item.dump());
      }
    } else if (key == "weight_map") {
      if (!value.is_object()) throw DataError(fmt::format("{}: 'weight_map' is not an object", source));
      for (const auto& [tensor, file] : value.items()) {
        if (!file.is_string()) {
          throw DataError(fmt::format("{}: weight_map: tensor {}: file is not a string", source, named(tensor)));
        }
        const auto& name = file.get_ref<const std::string&>();
        if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
            name.find('\0') != std::string::npos) {
          throw DataError(fmt::format("{}: weight_map: tensor {}: file {} is not a plain file name", source,
                                      named(tensor), named(name)));
        }
        out.weight_map.emplace(tensor, name);
      }
    } else {
      throw DataError(fmt::format("{}: unknown key {}", source, named(key)));
    }
  }
  if (!index.contains("weight_map")) throw DataError(fmt::format("{}: has no 'weight_map'", source));
  return out;
}

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::filesystem::path& directory) {
  SafetensorsCheckpoint checkpoint;
  checkpoint.directory_ = directory;
  const auto index_path = directory / kSafetensorsIndexFile;
  std::error_code error;
  if (!std::filesystem::exists(index_path, error)) {
    const auto single = directory / kSafetensorsSingleFile;
    if (!std::filesystem::exists(single, error)) {
      throw DataError(fmt::format("{}: neither {} nor {} exists", directory.string(), kSafetensorsIndexFile,
                                  kSafetensorsSingleFile));
    }
    checkpoint.files_.push_back(std::make_unique<SafetensorsFile>(read_safetensors(single)));
    for (const auto& tensor : checkpoint.files_[0]->header.tensors) {
      checkpoint.entries_.emplace(tensor.name, Entry{0, &tensor});
    }
    return checkpoint;
  }
  const MappedFile index_bytes(index_path);
  const SafetensorsIndex index = parse_safetensors_index(index_bytes.bytes(), index_path.string());
  for (const auto& [tensor, file] : index.weight_map) {
    if (!std::filesystem::is_regular_file(directory / file, error)) {
      throw DataError(fmt::format("{}: tensor {} is mapped to {}, which does not exist in {}", index_path.string(),
                                  named(tensor), named(file), directory.string()));
    }
  }
  for (const auto& file : index.files()) {
    const auto path = directory / file;
    checkpoint.files_.push_back(std::make_unique<SafetensorsFile>(read_safetensors(path)));
    const std::size_t slot = checkpoint.files_.size() - 1;
    const SafetensorsHeader& header = checkpoint.files_.back()->header;
    for (const auto& [tensor, mapped] : index.weight_map) {
      if (mapped == file && header.find(tensor) == nullptr) {
        throw DataError(fmt::format("{}: tensor {} is mapped to this file by {} but is not in it", path.string(),
                                    named(tensor), index_path.string()));
      }
    }
    for (const auto& tensor : header.tensors) {
      const auto it = index.weight_map.find(tensor.name);
      if (it == index.weight_map.end() || it->second != file) {
        throw DataError(fmt::format(
            "{}: tensor {} is not mapped to this file by {}{}", path.string(), named(tensor.name), index_path.string(),
            it == index.weight_map.end() ? "" : fmt::format(" (it names {})", named(it->second))));
      }
      checkpoint.entries_.emplace(tensor.name, Entry{slot, &tensor});
    }
  }
  return checkpoint;
}

std::map<std::string, TensorShape> SafetensorsCheckpoint::shapes() const {
  std::map<std::string, TensorShape> out;
  for (const auto& [name, entry] : entries_) out.emplace(name, entry.tensor->shape);
  return out;
}

const SafetensorsCheckpoint::Entry& SafetensorsCheckpoint::entry(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end()) {
    throw DataError(fmt::format("{}: no tensor {} in the checkpoint", directory_.string(), named(name)));
  }
  return it->second;
}

const SafetensorsTensor& SafetensorsCheckpoint::tensor(const std::string& name) const { return *entry(name).tensor; }

std::string_view SafetensorsCheckpoint::bytes(const std::string& name) const {
  const Entry& found = entry(name);
  return files_[found.file]->bytes(*found.tensor);
}

const std::filesystem::path& SafetensorsCheckpoint::file_of(const std::string& name) const {
  return files_[entry(name).file]->mapping.path();
}

}  // namespace longrec::model
