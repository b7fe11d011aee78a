// Llama decoder blocks (issue 15: the text machinery of the HLLM backbone).
//
// The Hugging Face LlamaModel's math, without its LM head:
//   h_0 = embed_tokens[ids] (or inputs_embeds given by the caller)
//   a   = h + o_proj(attention(rope(q_proj(rms(h))), rope(k_proj(rms(h))), v_proj(rms(h))))
//   h'  = a + down_proj(silu(gate_proj(rms(a))) * up_proj(rms(a)))
//   out = rms_final(h_L)
// rms(x) = w * x / sqrt(mean(x^2) + eps) (computed in float32 at least); no biases anywhere;
// grouped-query attention (num_key_value_heads divides num_attention_heads); rotary embeddings
// with inv_freq = rope_theta^(-2i / head_dim) on position ids given by the caller (left- or
// right-aligned sequences both work); softmax(q k^T / sqrt(head_dim)) under a causal mask or
// an explicit one.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "longrec/model/llama/llama_config.h"

namespace longrec::model::llama {

class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RmsNorm);

// cos, sin: [B, L, head_dim] for position ids [B, L] (or [L], broadcast over the batch).
std::pair<torch::Tensor, torch::Tensor> rotary_cos_sin(const LlamaConfig& c, const torch::Tensor& position_ids,
                                                       torch::ScalarType dtype, torch::Device device);

// A bool mask [B, L, L] (true = may attend): causal, and no key where key_valid [B, L] is false.
// Query rows with no allowed key (padding) stay finite but meaningless.
torch::Tensor causal_padding_mask(const torch::Tensor& key_valid);

class LlamaAttentionImpl : public torch::nn::Module {
 public:
  explicit LlamaAttentionImpl(const LlamaConfig& c);
  // x [B, L, D]; cos/sin [B, L, head_dim]; mask undefined (causal) or bool [L, L] / [B, L, L] / [B, 1, L, L].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask);
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t heads, kv_heads, head_dim;
};
TORCH_MODULE(LlamaAttention);

class LlamaMlpImpl : public torch::nn::Module {
 public:
  explicit LlamaMlpImpl(const LlamaConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMlp);

class LlamaDecoderLayerImpl : public torch::nn::Module {
 public:
  explicit LlamaDecoderLayerImpl(const LlamaConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask = {});
  LlamaAttention self_attn{nullptr};
  LlamaMlp mlp{nullptr};
  RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(LlamaDecoderLayer);

struct LlamaOutput {
  // num_hidden_layers + 1 entries, Hugging Face's output_hidden_states: [0] the embeddings,
  // [k] layer k's output for k < L, [L] the last layer's output after the final norm.
  std::vector<torch::Tensor> hidden_states;
  torch::Tensor last_raw;  // the last layer's output before the final norm
  const torch::Tensor& last_hidden_state() const { return hidden_states.back(); }
};

class LlamaModelImpl : public torch::nn::Module {
 public:
  explicit LlamaModelImpl(const LlamaConfig& c);
  // ids [B, L] int64; position_ids [B, L] or [L] int64; mask as LlamaAttention (undefined: causal).
  LlamaOutput forward(const torch::Tensor& ids, const torch::Tensor& position_ids, const torch::Tensor& mask = {});
  // inputs_embeds [B, L, hidden_size] instead of token ids.
  LlamaOutput forward_embeds(const torch::Tensor& inputs_embeds, const torch::Tensor& position_ids,
                             const torch::Tensor& mask = {});
  // Copies a Hugging Face state (names as LlamaForCausalLM's: model.embed_tokens.weight, ...). Every
  // expected name must be there with its shape; any other name is refused (lm_head.weight only
  // with tie_word_embeddings false, where it is required and ignored: the model has no LM head).
  // Throws ConfigError("llama.state", ...) naming the tensor; nothing is copied then.
  void load_state(const std::map<std::string, torch::Tensor>& state);
  // The expected names and shapes (lm_head.weight excluded).
  std::map<std::string, std::vector<int64_t>> expected_shapes() const;

  const LlamaConfig& config() const { return config_; }
  torch::nn::Embedding embed_tokens{nullptr};
  std::vector<LlamaDecoderLayer> layers;
  RmsNorm norm{nullptr};

 private:
  LlamaConfig config_;
};
TORCH_MODULE(LlamaModel);

}  // namespace longrec::model::llama
