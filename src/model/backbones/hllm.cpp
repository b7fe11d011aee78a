#include "longrec/model/backbones/hllm.h"

#include "longrec/core/error.h"

namespace longrec::model {

llama::LlamaConfig user_llm_config(const ModelConfig& c) {
  llama::LlamaConfig l;
  l.vocab_size = 1;  // unused: the user LLM reads item vectors
  l.hidden_size = c.dim;
  l.intermediate_size = c.resolved_ffn_dim();
  l.num_hidden_layers = c.blocks;
  l.num_attention_heads = c.heads;
  l.num_key_value_heads = c.hllm.kv_heads > 0 ? c.hllm.kv_heads : c.heads;
  l.head_dim = c.resolved_head_dim();
  l.rms_norm_eps = c.hllm.rms_norm_eps;
  l.rope_theta = c.hllm.rope_theta;
  l.max_position_embeddings = c.max_len;
  l.tie_word_embeddings = true;
  return l;
}

llama::LlamaConfig item_llm_config(const ModelConfig& c) {
  llama::LlamaConfig l;
  const auto& h = c.hllm;
  l.vocab_size = h.vocab_size;
  l.hidden_size = c.dim;
  l.intermediate_size = h.item_ffn_dim > 0 ? h.item_ffn_dim : c.resolved_ffn_dim();
  l.num_hidden_layers = h.item_blocks > 0 ? h.item_blocks : c.blocks;
  l.num_attention_heads = h.item_heads > 0 ? h.item_heads : c.heads;
  l.num_key_value_heads = h.item_kv_heads > 0 ? h.item_kv_heads : l.num_attention_heads;
  l.head_dim = c.dim / l.num_attention_heads;
  l.rms_norm_eps = h.rms_norm_eps;
  l.rope_theta = h.rope_theta;
  l.max_position_embeddings = h.max_text_len + 1;
  l.tie_word_embeddings = true;
  return l;
}

Hllm::Hllm(const ModelConfig& config) : llama_(user_llm_config(config)) {
  llama_.validate();
  torch::nn::ModuleList list;
  for (int64_t i = 0; i < llama_.num_hidden_layers; ++i) {
    layers.push_back(llama::LlamaDecoderLayer(llama_));
    list->push_back(layers.back());
  }
  register_module("layers", list);
  norm = register_module("norm", llama::RmsNorm(llama_.hidden_size, llama_.rms_norm_eps));
}

torch::Tensor Hllm::forward(const torch::Tensor& input, const AttentionPlan& plan, const KeyValueMemory* memory,
                            KeyValueMemory* capture) {
  LONGREC_CHECK(plan.slot_position.defined(), "the hllm backbone needs the plan's slot positions");
  auto [cos, sin] = llama::rotary_cos_sin(llama_, plan.slot_position, input.scalar_type(), input.device());
  torch::Tensor memory_cos, memory_sin;
  if (memory != nullptr && plan.memory > 0) {
    LONGREC_CHECK(plan.memory_position.defined(), "the plan has {} memory slots but no memory positions", plan.memory);
    std::tie(memory_cos, memory_sin) =
        llama::rotary_cos_sin(llama_, plan.memory_position, input.scalar_type(), input.device());
  }
  if (capture != nullptr) *capture = {};
  auto x = input;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    torch::Tensor k, v;
    const bool save = capture != nullptr;
    x = layers[i]->forward_plan(x, cos, sin, plan, memory_cos, memory_sin, memory_keys(memory, i),
                                memory_values(memory, i), save ? &k : nullptr, save ? &v : nullptr);
    if (save) {
      capture->keys.push_back(k);
      capture->values.push_back(v);
    }
  }
  return norm(x) * plan.valid.unsqueeze(-1).to(x.scalar_type());
}

double llama_flops_per_token(const llama::LlamaConfig& c, double keys) {
  const double d = static_cast<double>(c.hidden_size), hd = static_cast<double>(c.head_dim);
  const double h = static_cast<double>(c.num_attention_heads), kv = static_cast<double>(c.num_key_value_heads);
  const double i = static_cast<double>(c.intermediate_size);
  const double projections = 2 * d * (h * hd + 2 * kv * hd) + 2 * h * hd * d;
  const double mlp = 2 * 3 * d * i;
  const double attention = 2 * 2 * h * hd * keys;
  return static_cast<double>(c.num_hidden_layers) * (projections + mlp + attention);
}

double Hllm::flops_per_token(std::int64_t width) const {
  return llama_flops_per_token(llama_, static_cast<double>(width));
}

}  // namespace longrec::model
