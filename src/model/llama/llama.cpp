#include "longrec/model/llama/llama.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <limits>

#include "longrec/core/error.h"

namespace longrec::model::llama {

namespace {

// float32 at least (Hugging Face computes norms and softmax in float32); float64 stays float64.
torch::ScalarType compute_dtype(torch::ScalarType t) { return t == torch::kDouble ? torch::kDouble : torch::kFloat; }

torch::Tensor rotate_half(const torch::Tensor& x) {
  const auto half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

torch::nn::Linear linear(int64_t in, int64_t out) {
  torch::nn::Linear l(torch::nn::LinearOptions(in, out).bias(false));
  torch::NoGradGuard no_grad;
  l->weight.normal_(0, 0.02);
  return l;
}

std::string shape_text(at::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

}  // namespace

RmsNormImpl::RmsNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  auto h = x.to(compute_dtype(x.scalar_type()));
  h = h * torch::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * h.to(x.scalar_type());
}

std::pair<torch::Tensor, torch::Tensor> rotary_cos_sin(const LlamaConfig& c, const torch::Tensor& position_ids,
                                                       torch::ScalarType dtype, torch::Device device) {
  const auto ct = compute_dtype(dtype);
  const auto opts = torch::TensorOptions().dtype(ct).device(device);
  // inv_freq_i = theta^(-2i / head_dim), as Hugging Face's default rope.
  auto exponent = torch::arange(0, c.head_dim, 2, torch::TensorOptions().dtype(torch::kLong).device(device)).to(ct) /
                  static_cast<double>(c.head_dim);
  auto inv_freq = 1.0 / torch::pow(c.rope_theta, exponent);     // [d/2]
  auto freqs = position_ids.to(opts).unsqueeze(-1) * inv_freq;  // [B, L, d/2]
  auto emb = torch::cat({freqs, freqs}, -1);                    // [B, L, d]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor causal_padding_mask(const torch::Tensor& key_valid) {
  LONGREC_CHECK(key_valid.dim() == 2, "key_valid must be [B, L], got {}", shape_text(key_valid.sizes()));
  const auto L = key_valid.size(1);
  auto causal = torch::ones({L, L}, torch::TensorOptions().dtype(torch::kBool).device(key_valid.device())).tril();
  return causal.unsqueeze(0) & key_valid.to(torch::kBool).unsqueeze(1);
}

LlamaAttentionImpl::LlamaAttentionImpl(const LlamaConfig& c)
    : heads(c.num_attention_heads), kv_heads(c.num_key_value_heads), head_dim(c.head_dim) {
  q_proj = register_module("q_proj", linear(c.hidden_size, heads * head_dim));
  k_proj = register_module("k_proj", linear(c.hidden_size, kv_heads * head_dim));
  v_proj = register_module("v_proj", linear(c.hidden_size, kv_heads * head_dim));
  o_proj = register_module("o_proj", linear(heads * head_dim, c.hidden_size));
}

torch::Tensor LlamaAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                          const torch::Tensor& mask) {
  const auto B = x.size(0), L = x.size(1);
  auto q = q_proj(x).view({B, L, heads, head_dim}).transpose(1, 2);  // [B, H, L, d]
  auto k = k_proj(x).view({B, L, kv_heads, head_dim}).transpose(1, 2);
  auto v = v_proj(x).view({B, L, kv_heads, head_dim}).transpose(1, 2);
  const auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);
  q = q * c + rotate_half(q) * s;
  k = k * c + rotate_half(k) * s;
  if (kv_heads != heads) {  // query head h reads key/value head h / (heads / kv_heads)
    k = k.repeat_interleave(heads / kv_heads, 1);
    v = v.repeat_interleave(heads / kv_heads, 1);
  }
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(head_dim)));
  torch::Tensor allowed;
  if (!mask.defined()) {
    allowed = torch::ones({L, L}, torch::TensorOptions().dtype(torch::kBool).device(x.device())).tril();
  } else {
    LONGREC_CHECK(mask.scalar_type() == torch::kBool, "the attention mask must be bool (true = may attend)");
    LONGREC_CHECK(mask.size(-1) == L && mask.size(-2) == L && mask.dim() >= 2 && mask.dim() <= 4,
                  "attention mask {} does not fit {} tokens", shape_text(mask.sizes()), L);
    allowed = mask.dim() == 3 ? mask.unsqueeze(1) : mask;
  }
  // The lowest finite value, not -inf: a query with no allowed key (padding) stays finite.
  const double lowest = scores.scalar_type() == torch::kDouble ? std::numeric_limits<double>::lowest()
                        : scores.scalar_type() == torch::kHalf ? -65504.0
                                                               : std::numeric_limits<float>::lowest();
  scores = scores.masked_fill(allowed.logical_not(), lowest);
  auto probs = torch::softmax(scores, -1, compute_dtype(scores.scalar_type())).to(q.scalar_type());
  auto out = torch::matmul(probs, v).transpose(1, 2).reshape({B, L, heads * head_dim});
  return o_proj(out);
}

LlamaMlpImpl::LlamaMlpImpl(const LlamaConfig& c) {
  gate_proj = register_module("gate_proj", linear(c.hidden_size, c.intermediate_size));
  up_proj = register_module("up_proj", linear(c.hidden_size, c.intermediate_size));
  down_proj = register_module("down_proj", linear(c.intermediate_size, c.hidden_size));
}

torch::Tensor LlamaMlpImpl::forward(const torch::Tensor& x) {
  return down_proj(torch::silu(gate_proj(x)) * up_proj(x));
}

LlamaDecoderLayerImpl::LlamaDecoderLayerImpl(const LlamaConfig& c) {
  self_attn = register_module("self_attn", LlamaAttention(c));
  mlp = register_module("mlp", LlamaMlp(c));
  input_layernorm = register_module("input_layernorm", RmsNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", RmsNorm(c.hidden_size, c.rms_norm_eps));
}

torch::Tensor LlamaDecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                             const torch::Tensor& mask) {
  auto h = x + self_attn(input_layernorm(x), cos, sin, mask);
  return h + mlp(post_attention_layernorm(h));
}

LlamaModelImpl::LlamaModelImpl(const LlamaConfig& c) : config_(c) {
  c.validate();
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  {
    torch::NoGradGuard no_grad;
    embed_tokens->weight.normal_(0, 0.02);
  }
  torch::nn::ModuleList list;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    layers.push_back(LlamaDecoderLayer(c));
    list->push_back(layers.back());
  }
  register_module("layers", list);
  norm = register_module("norm", RmsNorm(c.hidden_size, c.rms_norm_eps));
}

LlamaOutput LlamaModelImpl::forward(const torch::Tensor& ids, const torch::Tensor& position_ids,
                                    const torch::Tensor& mask) {
  LONGREC_CHECK(ids.dim() == 2, "token ids must be [B, L], got {}", shape_text(ids.sizes()));
  return forward_embeds(embed_tokens(ids), position_ids, mask);
}

LlamaOutput LlamaModelImpl::forward_embeds(const torch::Tensor& inputs_embeds, const torch::Tensor& position_ids,
                                           const torch::Tensor& mask) {
  LONGREC_CHECK(inputs_embeds.dim() == 3 && inputs_embeds.size(2) == config_.hidden_size,
                "inputs_embeds must be [B, L, {}], got {}", config_.hidden_size, shape_text(inputs_embeds.sizes()));
  const auto B = inputs_embeds.size(0), L = inputs_embeds.size(1);
  auto positions = position_ids.dim() == 1 ? position_ids.unsqueeze(0).expand({B, L}) : position_ids;
  LONGREC_CHECK(positions.dim() == 2 && positions.size(0) == B && positions.size(1) == L,
                "position ids {} do not fit inputs [{}, {}]", shape_text(position_ids.sizes()), B, L);
  auto [cos, sin] = rotary_cos_sin(config_, positions, inputs_embeds.scalar_type(), inputs_embeds.device());
  LlamaOutput out;
  auto h = inputs_embeds;
  out.hidden_states.push_back(h);
  for (size_t i = 0; i < layers.size(); ++i) {
    h = layers[i]->forward(h, cos, sin, mask);
    if (i + 1 < layers.size()) out.hidden_states.push_back(h);
  }
  out.last_raw = h;
  out.hidden_states.push_back(norm(h));
  return out;
}

std::map<std::string, std::vector<int64_t>> LlamaModelImpl::expected_shapes() const {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& p : named_parameters()) shapes["model." + p.key()] = p.value().sizes().vec();
  return shapes;
}

void LlamaModelImpl::load_state(const std::map<std::string, torch::Tensor>& state) {
  const auto expected = expected_shapes();
  for (const auto& [name, shape] : expected) {
    auto it = state.find(name);
    if (it == state.end()) throw ConfigError("llama.state", fmt::format("tensor '{}' is missing", name));
    if (it->second.sizes().vec() != shape) {
      throw ConfigError("llama.state", fmt::format("tensor '{}' has shape {}, expected {}", name,
                                                   shape_text(it->second.sizes()), shape_text(shape)));
    }
    if (!it->second.is_floating_point()) {
      throw ConfigError("llama.state", fmt::format("tensor '{}' is not floating point ({})", name,
                                                   c10::toString(it->second.scalar_type())));
    }
  }
  const std::string head = "lm_head.weight";
  for (const auto& [name, tensor] : state) {
    if (expected.count(name)) continue;
    if (name == head) {
      if (config_.tie_word_embeddings) {
        throw ConfigError("llama.state", "tensor 'lm_head.weight' is present but tie_word_embeddings is true");
      }
      const std::vector<int64_t> want = {config_.vocab_size, config_.hidden_size};
      if (tensor.sizes().vec() != want) {
        throw ConfigError("llama.state", fmt::format("tensor 'lm_head.weight' has shape {}, expected {}",
                                                     shape_text(tensor.sizes()), shape_text(want)));
      }
      continue;
    }
    throw ConfigError("llama.state", fmt::format("unexpected tensor '{}'", name));
  }
  if (!config_.tie_word_embeddings && !state.count(head)) {
    throw ConfigError("llama.state",
                      "tensor 'lm_head.weight' is missing but tie_word_embeddings is false "
                      "(a tied checkpoint under an untied config?)");
  }
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) p.value().copy_(state.at("model." + p.key()));
}

}  // namespace longrec::model::llama
