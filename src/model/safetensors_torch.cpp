#include "longrec/model/safetensors_torch.h"

#include <cstring>

#include "longrec/core/error.h"

namespace longrec::model {

namespace {

struct Pair {
  SafetensorsDtype safetensors;
  torch::Dtype torch;
};
const std::vector<Pair>& pairs() {
  static const std::vector<Pair> table{
      {SafetensorsDtype::BOOL, torch::kBool},   {SafetensorsDtype::U8, torch::kUInt8},
      {SafetensorsDtype::I8, torch::kInt8},     {SafetensorsDtype::I16, torch::kInt16},
      {SafetensorsDtype::I32, torch::kInt32},   {SafetensorsDtype::I64, torch::kInt64},
      {SafetensorsDtype::F16, torch::kHalf},    {SafetensorsDtype::BF16, torch::kBFloat16},
      {SafetensorsDtype::F32, torch::kFloat32}, {SafetensorsDtype::F64, torch::kFloat64},
  };
  return table;
}

}  // namespace

torch::Dtype torch_dtype_of(const SafetensorsTensor& tensor, const std::string& source) {
  for (const auto& pair : pairs()) {
    if (pair.safetensors == tensor.dtype) return pair.torch;
  }
  throw DataError(
      fmt::format("{}: tensor '{}': dtype {} is not supported here", source, tensor.name, dtype_name(tensor.dtype)));
}

SafetensorsDtype safetensors_dtype_of(torch::Dtype dtype) {
  for (const auto& pair : pairs()) {
    if (pair.torch == dtype) return pair.safetensors;
  }
  throw Error(fmt::format("safetensors: no dtype for torch {}", c10::toString(dtype)));
}

torch::Tensor to_torch(const SafetensorsTensor& tensor, std::string_view bytes, torch::Dtype dtype,
                       const std::string& source) {
  const torch::Dtype stored = torch_dtype_of(tensor, source);
  const bool stored_floating = c10::isFloatingType(stored);
  if (stored_floating != c10::isFloatingType(dtype) || c10::isComplexType(dtype)) {
    throw DataError(fmt::format("{}: tensor '{}': dtype {} cannot be loaded as {}", source, tensor.name,
                                dtype_name(tensor.dtype), c10::toString(dtype)));
  }
  LONGREC_CHECK(bytes.size() == static_cast<std::size_t>(tensor.numel()) * dtype_size(tensor.dtype),
                "tensor '{}': {} bytes for {} elements", tensor.name, bytes.size(), tensor.numel());
  // Copy first: the mapping may be unaligned for the element type and goes away with its file.
  torch::Tensor out = torch::empty(tensor.shape, torch::TensorOptions().dtype(stored));
  if (!bytes.empty()) std::memcpy(out.data_ptr(), bytes.data(), bytes.size());
  return stored == dtype ? out : out.to(dtype);
}

torch::Tensor load_tensor(const SafetensorsCheckpoint& checkpoint, const std::string& name, torch::Dtype dtype) {
  return to_torch(checkpoint.tensor(name), checkpoint.bytes(name), dtype, checkpoint.file_of(name).string());
}

namespace {

// CPU contiguous copies (kept alive in `host`) and the writer's view of them.
std::vector<SafetensorsTensorData> host_views(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                                              std::vector<torch::Tensor>& host) {
  std::vector<SafetensorsTensorData> data;
  host.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    host.push_back(tensor.detach().to(torch::kCPU).contiguous());
    const torch::Tensor& t = host.back();
    data.push_back({name, safetensors_dtype_of(t.scalar_type()), t.sizes().vec(),
                    std::string_view(static_cast<const char*>(t.data_ptr()), t.nbytes())});
  }
  return data;
}

}  // namespace

void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<torch::Tensor> host;
  write_safetensors(path, host_views(tensors, host), metadata);
}

std::vector<std::string> save_safetensors_checkpoint(const std::filesystem::path& directory,
                                                     const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                                                     const std::map<std::string, std::string>& metadata,
                                                     std::uint64_t max_shard_bytes) {
  std::vector<torch::Tensor> host;
  return write_safetensors_checkpoint(directory, host_views(tensors, host), metadata, max_shard_bytes);
}

}  // namespace longrec::model
