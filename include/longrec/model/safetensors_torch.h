// safetensors <-> LibTorch: a checked tensor (safetensors.h) copied out of its
// mapping into a torch::Tensor of the training dtype, and torch tensors saved
// through the torch-free writer.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "longrec/model/safetensors.h"

namespace longrec::model {

// The torch dtype of a safetensors dtype; DataError naming the tensor for
// those LibTorch does not hold here (U16, U32, U64, F8_*).
torch::Dtype torch_dtype_of(const SafetensorsTensor& tensor, const std::string& source);
// The safetensors dtype of a torch dtype; Error for others.
SafetensorsDtype safetensors_dtype_of(torch::Dtype dtype);

// A CPU tensor of `dtype` holding a copy of the tensor's bytes (never a view
// of the mapping). Floating sources (F32, F16, BF16, F64) convert to floating
// dtypes only, integer and BOOL sources to integer dtypes only; anything else
// is a DataError naming the tensor.
torch::Tensor to_torch(const SafetensorsTensor& tensor, std::string_view bytes, torch::Dtype dtype,
                       const std::string& source);
// The same for a tensor of a checkpoint directory, by name.
torch::Tensor load_tensor(const SafetensorsCheckpoint& checkpoint, const std::string& name, torch::Dtype dtype);

// Saves named tensors (any device; stored in their own dtype: float32, bf16,
// f16, f64, int64, ...) to `path` atomically, in the given order.
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// The same as a checkpoint directory (write_safetensors_checkpoint: one file,
// or shards of at most `max_shard_bytes` and the index).
std::vector<std::string> save_safetensors_checkpoint(const std::filesystem::path& directory,
                                                     const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                                                     const std::map<std::string, std::string>& metadata = {},
                                                     std::uint64_t max_shard_bytes = 5'000'000'000);

}  // namespace longrec::model
