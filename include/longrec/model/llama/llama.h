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

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "longrec/model/attention_plan.h"
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

// x * cos + rotate_half(x) * sin: x [B, H, L, d] (or [T, H, d]) with cos/sin broadcastable to it.
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// A bool mask [B, L, L] (true = may attend): causal, and no key where key_valid [B, L] is false.
// Query rows with no allowed key (padding) stay finite but meaningless.
torch::Tensor causal_padding_mask(const torch::Tensor& key_valid);

// Variable-length sequences packed end to end into T tokens, without padding (HLLM's item LLM
// reads one short text per item: lengths vary several-fold, so a padded [N, max_len] batch wastes
// most of its work). Projections, MLP and norms run on the T real tokens. Attention runs per
// bucket of sequences of similar length: sorted longest first, a bucket takes the next sequence
// while its padded size stays within (1 + slack) of its real tokens; a bucket pads only at the
// end of each sequence, so under the causal mask no real query sees a padded key.
struct PackedSequences {
  struct Bucket {
    int64_t sequences = 0, length = 0;  // padded to [sequences, length]
    torch::Tensor gather;               // [sequences * length] rows of the packed tokens (padding repeats a real row)
    torch::Tensor keep;                 // rows of the padded bucket that are real tokens, in bucket order
  };
  std::vector<int64_t> lengths;  // [N], each >= 1
  torch::Tensor position_ids;    // [T] int64, 0 .. length - 1 within each sequence
  torch::Tensor last_token;      // [N] row of each sequence's last token
  std::vector<Bucket> buckets;
  torch::Tensor unpermute;  // [T]: packed row t is row unpermute[t] of the buckets' kept rows, concatenated
  int64_t total_tokens = 0;
  int64_t padded_tokens = 0;  // sum of sequences * length over the buckets (the attention work)

  // Throws ConfigError("llama.packed", ...) for no sequences, a length < 1 or slack outside [0, 10].
  static PackedSequences from_lengths(const std::vector<int64_t>& lengths, torch::Device device = torch::kCPU,
                                      double slack = 0.125);
};

class LlamaAttentionImpl : public torch::nn::Module {
 public:
  explicit LlamaAttentionImpl(const LlamaConfig& c);
  // x [B, L, D]; cos/sin [B, L, head_dim]; mask undefined (causal) or bool [L, L] / [B, L, L] / [B, 1, L, L].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask);
  // Over an attention plan (the HLLM user LLM, personalization tokens included): x [B, L, D];
  // cos/sin [B, L, head_dim] of plan.slot_position, memory_cos/memory_sin [B, M, head_dim] of
  // plan.memory_position. memory_k/memory_v: cached keys (before rotation) and values of the plan's
  // M memory slots, [B, heads, M, head_dim] (key/value heads repeated to every query head).
  // k_out/v_out receive this call's keys (before rotation) and values in that layout, so that a
  // serving state can cache them and rotate them at their position when used.
  torch::Tensor forward_plan(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                             const AttentionPlan& plan, const torch::Tensor& memory_cos = {},
                             const torch::Tensor& memory_sin = {}, const torch::Tensor& memory_k = {},
                             const torch::Tensor& memory_v = {}, torch::Tensor* k_out = nullptr,
                             torch::Tensor* v_out = nullptr);
  // x [T, D] packed tokens; cos/sin [T, head_dim]; causal within each sequence of `packed`.
  torch::Tensor forward_packed(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                               const PackedSequences& packed);
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
  torch::Tensor forward_packed(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                               const PackedSequences& packed);
  // As LlamaAttention::forward_plan, plus the MLP.
  torch::Tensor forward_plan(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                             const AttentionPlan& plan, const torch::Tensor& memory_cos = {},
                             const torch::Tensor& memory_sin = {}, const torch::Tensor& memory_k = {},
                             const torch::Tensor& memory_v = {}, torch::Tensor* k_out = nullptr,
                             torch::Tensor* v_out = nullptr);
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
  // Packed variable-length sequences (PackedSequences): ids [T] int64 or inputs_embeds [T, hidden_size];
  // positions restart at 0 in each sequence; every hidden state is [T, hidden_size], equal to running
  // each sequence alone through forward().
  LlamaOutput forward_packed(const torch::Tensor& ids, const PackedSequences& packed);
  LlamaOutput forward_packed_embeds(const torch::Tensor& inputs_embeds, const PackedSequences& packed);
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
  // Every layer in turn (as layer_forward runs it), collecting the hidden states.
  LlamaOutput run_layers(const torch::Tensor& inputs_embeds,
                         const std::function<torch::Tensor(LlamaDecoderLayer&, const torch::Tensor&)>& layer_forward);
  LlamaConfig config_;
};
TORCH_MODULE(LlamaModel);

}  // namespace longrec::model::llama
