// HLLM's user LLM (registered as "hllm"; bytedance/HLLM): Llama decoder layers
// (llama/llama.h) over the sequence of item vectors, which the item LLM
// (model/text_items.h) computes from each item's text. No token embedding:
// the inputs are the item vectors themselves (inputs_embeds); rotary
// positions come from the attention plan, so the personalization-token plans
// (dense and block) and serving states apply unchanged. The output is the
// last layer's state after the final RMSNorm, zero on padding slots.
#pragma once

#include <torch/torch.h>

#include "longrec/model/backbone.h"
#include "longrec/model/llama/llama.h"

namespace longrec::model {

// The Llama sizes of the user LLM (hidden model.dim, model.blocks layers, model.heads heads of
// model.head_dim, hllm.kv_heads, MLP model.ffn_dim) and of the item LLM (hllm.item_*; vocabulary
// hllm.vocab_size). No LM head (tie_word_embeddings true for a saved directory).
llama::LlamaConfig user_llm_config(const ModelConfig& config);
llama::LlamaConfig item_llm_config(const ModelConfig& config);

class Hllm : public Backbone {
 public:
  explicit Hllm(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const AttentionPlan& plan, const KeyValueMemory* memory = nullptr,
                        KeyValueMemory* capture = nullptr) override;
  bool uses_relative_bias() const override { return false; }
  double flops_per_token(std::int64_t width) const override;

  // Hugging Face names without the "model." prefix: layers.N.*, norm.weight.
  std::vector<llama::LlamaDecoderLayer> layers;
  llama::RmsNorm norm{nullptr};

 private:
  llama::LlamaConfig llama_;
};

// Forward FLOPs per token of Llama blocks over `keys` attended keys per query (projections,
// SwiGLU MLP, scores and weighted values; norms and rotations not counted).
double llama_flops_per_token(const llama::LlamaConfig& config, double keys);

}  // namespace longrec::model
