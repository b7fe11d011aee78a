// A Hugging Face Llama directory (what `save_pretrained` writes and what a
// downloaded TinyLlama-like model holds): config.json plus model.safetensors
// or a sharded model.safetensors.index.json, read into / written from the
// Llama blocks of llama.h.
#pragma once

#include <torch/torch.h>

#include <filesystem>

#include "longrec/model/llama/llama.h"

namespace longrec::model::llama {

// Reads config.json (LlamaConfig::from_hf_file: unimplemented keys refused by
// name), opens the weights (one file or shards), checks every tensor's name
// and shape against the blocks before reading any data (a missing, unexpected
// or misshapen tensor is named, with its file), and loads them converted to
// `dtype` (f32, bf16 and f16 files all load into float32 or float64 blocks).
LlamaModel load_pretrained(const std::filesystem::path& directory, torch::Dtype dtype = torch::kFloat32);

// Writes config.json and model.safetensors (shards past `max_shard_bytes`,
// with the index) that transformers' LlamaModel / LlamaForCausalLM load, the
// weights stored as `dtype` (float32 or bfloat16). The blocks have no LM head:
// the config says tie_word_embeddings, so that a causal LM made from the
// directory uses the embedding as its head and the directory loads back here.
void save_pretrained(LlamaModel& model, const std::filesystem::path& directory, torch::Dtype dtype = torch::kFloat32,
                     std::uint64_t max_shard_bytes = 5'000'000'000);

// What `longrec llama` prints: the loaded directory's sizes and, for token
// ids, every hidden state's RMS at the last position (torch stays out of the CLI).
struct PretrainedSummary {
  LlamaConfig config;
  std::int64_t parameters = 0;
  std::vector<double> last_position_rms;  // num_hidden_layers + 1 entries when ids were given
};
// `threads` intra-op threads. ConfigError("llama.ids") naming an id outside the vocabulary.
PretrainedSummary inspect_pretrained(const std::filesystem::path& directory, const std::vector<std::int64_t>& ids,
                                     int threads);

// config.json text for `config` (model_type llama, LlamaForCausalLM).
std::string to_hf_json(const LlamaConfig& config, torch::Dtype dtype);

}  // namespace longrec::model::llama
