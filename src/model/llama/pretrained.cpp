#include "longrec/model/llama/pretrained.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "longrec/core/atomic_file.h"
#include "longrec/core/error.h"
#include "longrec/model/safetensors.h"
#include "longrec/model/safetensors_torch.h"

namespace longrec::model::llama {

namespace fs = std::filesystem;

LlamaModel load_pretrained(const fs::path& directory, torch::Dtype dtype) {
  if (dtype != torch::kFloat32 && dtype != torch::kFloat64) {
    throw ConfigError("llama.dtype", "the Llama blocks load into float32 or float64");
  }
  const auto config = LlamaConfig::from_hf_file((directory / "config.json").string());
  const auto checkpoint = SafetensorsCheckpoint::open(directory);
  LlamaModel model(config);
  // Names and shapes first, every problem named at once, before any tensor is read.
  auto want = model->expected_shapes();
  if (!config.tie_word_embeddings) want["lm_head.weight"] = {config.vocab_size, config.hidden_size};
  check_tensors(checkpoint.shapes(), want, directory.string());
  std::map<std::string, torch::Tensor> state;
  for (const auto& [name, shape] : want) state[name] = load_tensor(checkpoint, name, dtype);
  model->to(dtype);
  model->load_state(state);
  return model;
}

PretrainedSummary inspect_pretrained(const fs::path& directory, const std::vector<std::int64_t>& ids, int threads) {
  torch::set_num_threads(threads);
  auto model = load_pretrained(directory);
  PretrainedSummary summary;
  summary.config = model->config();
  for (const auto& p : model->parameters()) summary.parameters += p.numel();
  if (ids.empty()) return summary;
  for (auto id : ids) {
    if (id < 0 || id >= summary.config.vocab_size) {
      throw ConfigError(
          "llama.ids", fmt::format("token id {} is outside the vocabulary (0..{})", id, summary.config.vocab_size - 1));
    }
  }
  torch::NoGradGuard no_grad;
  const auto n = static_cast<std::int64_t>(ids.size());
  const auto out = model->forward(torch::tensor(ids, torch::kInt64).unsqueeze(0), torch::arange(n, torch::kInt64));
  for (const auto& h : out.hidden_states) {
    summary.last_position_rms.push_back(h.select(1, n - 1).pow(2).mean().sqrt().item<double>());
  }
  return summary;
}

std::string to_hf_json(const LlamaConfig& c, torch::Dtype dtype) {
  const nlohmann::json j = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"head_dim", c.head_dim},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"rope_scaling", nullptr},
      {"max_position_embeddings", c.max_position_embeddings},
      {"hidden_act", "silu"},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"attention_dropout", 0.0},
      {"tie_word_embeddings", true},
      {"torch_dtype", dtype == torch::kBFloat16 ? "bfloat16" : "float32"},
  };
  return j.dump(2) + "\n";
}

void save_pretrained(LlamaModel& model, const fs::path& directory, torch::Dtype dtype, std::uint64_t max_shard_bytes) {
  if (dtype != torch::kFloat32 && dtype != torch::kBFloat16) {
    throw ConfigError("llama.dtype", "Llama weights are saved as float32 or bfloat16");
  }
  fs::create_directories(directory);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : model->named_parameters()) {
    tensors.emplace_back("model." + item.key(), item.value().detach().to(torch::kCPU, dtype).contiguous());
  }
  save_safetensors_checkpoint(directory, tensors, {{"format", "pt"}}, max_shard_bytes);
  // config.json last: a directory with a config has its weights.
  const auto text = to_hf_json(model->config(), dtype);
  write_file_atomically(directory / "config.json", [&](std::ostream& out) { out << text; });
}

}  // namespace longrec::model::llama
