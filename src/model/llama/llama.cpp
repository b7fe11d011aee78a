#include "longrec/model/llama/llama.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <limits>
#include <numeric>

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

// The lowest finite value, not -inf: a query with no allowed key (padding) stays finite.
double lowest_value(torch::ScalarType t) {
  return t == torch::kDouble ? std::numeric_limits<double>::lowest()
         : t == torch::kHalf ? -65504.0
                             : std::numeric_limits<float>::lowest();
}

}  // namespace

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  return x * cos + rotate_half(x) * sin;
}

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

namespace {

// Keys or values [B, KV, L, d] for `heads` query heads: query head h reads key/value head
// h / (heads / KV).
torch::Tensor repeat_kv(const torch::Tensor& t, int64_t heads) {
  const auto kv_heads = t.size(1);
  return kv_heads == heads ? t : t.repeat_interleave(heads / kv_heads, 1);
}

// Softmax over the last dimension of scaled scores where `allowed` (bool, broadcastable), in
// float32 at least. Disallowed scores become the lowest finite value, not -inf: a query with no
// allowed key (padding) stays finite.
torch::Tensor masked_softmax(const torch::Tensor& scores, const torch::Tensor& allowed) {
  const auto t = scores.scalar_type();
  return torch::softmax(scores.masked_fill(allowed.logical_not(), lowest_value(t)), -1, compute_dtype(t));
}

// q [B, H, L, d], k and v [B, KV, L, d] (rotated already); mask undefined (causal) or bool
// [L, L] / [B, L, L] / [B, 1, L, L]. Returns [B, L, H * d].
torch::Tensor attend(torch::Tensor q, torch::Tensor k, torch::Tensor v, const torch::Tensor& mask) {
  const auto B = q.size(0), heads = q.size(1), L = q.size(2), head_dim = q.size(3);
  k = repeat_kv(k, heads);
  v = repeat_kv(v, heads);
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(head_dim)));
  torch::Tensor allowed;
  if (!mask.defined()) {
    allowed = torch::ones({L, L}, torch::TensorOptions().dtype(torch::kBool).device(q.device())).tril();
  } else {
    LONGREC_CHECK(mask.scalar_type() == torch::kBool, "the attention mask must be bool (true = may attend)");
    LONGREC_CHECK(mask.size(-1) == L && mask.size(-2) == L && mask.dim() >= 2 && mask.dim() <= 4,
                  "attention mask {} does not fit {} tokens", shape_text(mask.sizes()), L);
    allowed = mask.dim() == 3 ? mask.unsqueeze(1) : mask;
  }
  auto probs = masked_softmax(scores, allowed).to(q.scalar_type());
  return torch::matmul(probs, v).transpose(1, 2).reshape({B, L, heads * head_dim});
}

}  // namespace

PackedSequences PackedSequences::from_lengths(const std::vector<int64_t>& lengths, torch::Device device, double slack) {
  if (lengths.empty()) throw ConfigError("llama.packed", "expected at least one sequence");
  if (!(slack >= 0 && slack <= 10)) {
    throw ConfigError("llama.packed", fmt::format("slack {} is outside [0, 10]", slack));
  }
  PackedSequences p;
  p.lengths = lengths;
  const auto n = static_cast<int64_t>(lengths.size());
  std::vector<int64_t> start(lengths.size()), positions, last(lengths.size());
  for (int64_t i = 0; i < n; ++i) {
    if (lengths[i] < 1) {
      throw ConfigError("llama.packed", fmt::format("sequence {} has length {}, expected >= 1", i, lengths[i]));
    }
    start[i] = p.total_tokens;
    for (int64_t t = 0; t < lengths[i]; ++t) positions.push_back(t);
    p.total_tokens += lengths[i];
    last[i] = p.total_tokens - 1;
  }
  std::vector<int64_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
  // kept_source[r]: the packed row of the r-th kept row (buckets in order); its inverse is unpermute.
  std::vector<int64_t> kept_source;
  kept_source.reserve(static_cast<size_t>(p.total_tokens));
  const auto long_opts = torch::TensorOptions().dtype(torch::kLong);
  for (size_t first = 0; first < order.size();) {
    const int64_t width = lengths[order[first]];
    int64_t real = 0;
    size_t end = first;
    while (end < order.size()) {
      const int64_t count = static_cast<int64_t>(end - first) + 1;
      const int64_t with = real + lengths[order[end]];
      if (end > first && static_cast<double>(count * width) > (1 + slack) * static_cast<double>(with)) break;
      real = with;
      ++end;
    }
    Bucket b;
    b.sequences = static_cast<int64_t>(end - first);
    b.length = width;
    std::vector<int64_t> gather, keep;
    gather.reserve(static_cast<size_t>(b.sequences * width));
    for (size_t j = first; j < end; ++j) {
      const auto s = order[j];
      for (int64_t t = 0; t < width; ++t) {
        const bool is_real = t < lengths[s];
        if (is_real) {
          keep.push_back(static_cast<int64_t>(gather.size()));
          kept_source.push_back(start[s] + t);
        }
        gather.push_back(is_real ? start[s] + t : start[s]);
      }
    }
    b.gather = torch::tensor(gather, long_opts).to(device);
    b.keep = torch::tensor(keep, long_opts).to(device);
    p.padded_tokens += b.sequences * width;
    p.buckets.push_back(std::move(b));
    first = end;
  }
  std::vector<int64_t> unpermute(kept_source.size());
  for (size_t r = 0; r < kept_source.size(); ++r)
    unpermute[static_cast<size_t>(kept_source[r])] = static_cast<int64_t>(r);
  p.position_ids = torch::tensor(positions, long_opts).to(device);
  p.last_token = torch::tensor(last, long_opts).to(device);
  p.unpermute = torch::tensor(unpermute, long_opts).to(device);
  return p;
}

torch::Tensor LlamaAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                          const torch::Tensor& mask) {
  const auto B = x.size(0), L = x.size(1);
  auto q = q_proj(x).view({B, L, heads, head_dim}).transpose(1, 2);  // [B, H, L, d]
  auto k = k_proj(x).view({B, L, kv_heads, head_dim}).transpose(1, 2);
  auto v = v_proj(x).view({B, L, kv_heads, head_dim}).transpose(1, 2);
  const auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);
  q = apply_rotary(q, c, s);
  k = apply_rotary(k, c, s);
  return o_proj(attend(q, k, v, mask));
}

torch::Tensor LlamaAttentionImpl::forward_plan(const torch::Tensor& x, const torch::Tensor& cos,
                                               const torch::Tensor& sin, const AttentionPlan& plan,
                                               const torch::Tensor& memory_cos, const torch::Tensor& memory_sin,
                                               const torch::Tensor& memory_k, const torch::Tensor& memory_v,
                                               torch::Tensor* k_out, torch::Tensor* v_out) {
  const auto B = x.size(0), L = x.size(1);
  auto q = q_proj(x).view({B, L, heads, head_dim}).transpose(1, 2);  // [B, H, L, d]
  auto k = k_proj(x).view({B, L, kv_heads, head_dim}).transpose(1, 2);
  auto v = v_proj(x).view({B, L, kv_heads, head_dim}).transpose(1, 2);
  k = repeat_kv(k, heads);  // expanded before the capture: cached memory is [B, heads, M, d]
  v = repeat_kv(v, heads);
  if (k_out != nullptr) *k_out = k;
  if (v_out != nullptr) *v_out = v;
  const auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);
  q = apply_rotary(q, c, s);
  k = apply_rotary(k, c, s);
  torch::Tensor rotated_memory;
  if (memory_k.defined()) rotated_memory = apply_rotary(memory_k, memory_cos.unsqueeze(1), memory_sin.unsqueeze(1));
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  const AttentionScorer scorer = [&](const torch::Tensor& scores, const AttentionGroup& group) {
    const auto ct = compute_dtype(scores.scalar_type());
    return masked_softmax(scores.to(ct) * scale, group.allowed.unsqueeze(1)).to(scores.scalar_type());
  };
  auto out = model::attend(plan, q, k, v, scorer, rotated_memory, memory_v);  // [B, H, L, d]
  return o_proj(out.transpose(1, 2).reshape({B, L, heads * head_dim}));
}

torch::Tensor LlamaAttentionImpl::forward_packed(const torch::Tensor& x, const torch::Tensor& cos,
                                                 const torch::Tensor& sin, const PackedSequences& packed) {
  const auto T = x.size(0);
  LONGREC_CHECK(T == packed.total_tokens, "packed input has {} tokens, its layout {}", T, packed.total_tokens);
  auto q = q_proj(x).view({T, heads, head_dim});  // [T, H, d]
  auto k = k_proj(x).view({T, kv_heads, head_dim});
  auto v = v_proj(x).view({T, kv_heads, head_dim});
  const auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);
  q = apply_rotary(q, c, s);
  k = apply_rotary(k, c, s);
  std::vector<torch::Tensor> kept;
  kept.reserve(packed.buckets.size());
  for (const auto& b : packed.buckets) {
    auto bucket = [&](const torch::Tensor& t, int64_t h) {
      return t.index_select(0, b.gather).view({b.sequences, b.length, h, head_dim}).transpose(1, 2);
    };
    auto out = attend(bucket(q, heads), bucket(k, kv_heads), bucket(v, kv_heads), {});
    kept.push_back(out.reshape({b.sequences * b.length, heads * head_dim}).index_select(0, b.keep));
  }
  return o_proj(torch::cat(kept).index_select(0, packed.unpermute));
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

torch::Tensor LlamaDecoderLayerImpl::forward_plan(const torch::Tensor& x, const torch::Tensor& cos,
                                                  const torch::Tensor& sin, const AttentionPlan& plan,
                                                  const torch::Tensor& memory_cos, const torch::Tensor& memory_sin,
                                                  const torch::Tensor& memory_k, const torch::Tensor& memory_v,
                                                  torch::Tensor* k_out, torch::Tensor* v_out) {
  auto h = x + self_attn->forward_plan(input_layernorm(x), cos, sin, plan, memory_cos, memory_sin, memory_k, memory_v,
                                       k_out, v_out);
  return h + mlp(post_attention_layernorm(h));
}

torch::Tensor LlamaDecoderLayerImpl::forward_packed(const torch::Tensor& x, const torch::Tensor& cos,
                                                    const torch::Tensor& sin, const PackedSequences& packed) {
  auto h = x + self_attn->forward_packed(input_layernorm(x), cos, sin, packed);
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
  return run_layers(inputs_embeds, [&](LlamaDecoderLayer& layer, const torch::Tensor& h) {
    return layer->forward(h, cos, sin, mask);
  });
}

LlamaOutput LlamaModelImpl::run_layers(
    const torch::Tensor& inputs_embeds,
    const std::function<torch::Tensor(LlamaDecoderLayer&, const torch::Tensor&)>& layer_forward) {
  LlamaOutput out;
  auto h = inputs_embeds;
  out.hidden_states.push_back(h);
  for (size_t i = 0; i < layers.size(); ++i) {
    h = layer_forward(layers[i], h);
    if (i + 1 < layers.size()) out.hidden_states.push_back(h);
  }
  out.last_raw = h;
  out.hidden_states.push_back(norm(h));
  return out;
}

LlamaOutput LlamaModelImpl::forward_packed(const torch::Tensor& ids, const PackedSequences& packed) {
  LONGREC_CHECK(ids.dim() == 1, "packed token ids must be [T], got {}", shape_text(ids.sizes()));
  return forward_packed_embeds(embed_tokens(ids), packed);
}

LlamaOutput LlamaModelImpl::forward_packed_embeds(const torch::Tensor& inputs_embeds, const PackedSequences& packed) {
  LONGREC_CHECK(inputs_embeds.dim() == 2 && inputs_embeds.size(1) == config_.hidden_size &&
                    inputs_embeds.size(0) == packed.total_tokens,
                "packed inputs_embeds must be [{}, {}], got {}", packed.total_tokens, config_.hidden_size,
                shape_text(inputs_embeds.sizes()));
  auto [cos, sin] = rotary_cos_sin(config_, packed.position_ids, inputs_embeds.scalar_type(), inputs_embeds.device());
  return run_layers(inputs_embeds, [&](LlamaDecoderLayer& layer, const torch::Tensor& h) {
    return layer->forward_packed(h, cos, sin, packed);
  });
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
