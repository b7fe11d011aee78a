#include "longrec/model/backbones/hstu.h"

namespace longrec::model {

namespace {
constexpr double kNormEps = 1e-6;  // HSTU's LayerNorm epsilon (the reference's)
}  // namespace

HstuBlock::HstuBlock(const ModelConfig& c)
    : dim_(c.dim),
      heads_(c.heads),
      head_dim_(c.resolved_head_dim()),
      max_len_(c.max_len),
      attention_divisor_(c.resolved_attention_divisor()),
      dropout_(c.dropout),
      attn_dropout_(c.attn_dropout) {
  const int width = heads_ * head_dim_;
  uvqk = register_parameter("uvqk", torch::empty({dim_, 4 * width}).normal_(0, 0.02));
  position_weights = register_parameter("position_bias", torch::empty({2 * max_len_ - 1}).normal_(0, 0.02));
  time_weights = register_parameter("time_bias", torch::empty({c.time_buckets + 1}).normal_(0, 0.02));
  output = register_module("output", torch::nn::Linear(width, dim_));
  torch::nn::init::xavier_uniform_(output->weight);
}

torch::Tensor HstuBlock::attention_weights(const torch::Tensor& scores, const AttentionGroup& group) {
  const auto& p = group.position_index;
  const auto& t = group.time_bucket;
  auto bias = position_weights.index_select(0, p.reshape({-1})).view(p.sizes()) +
              time_weights.index_select(0, t.reshape({-1})).view(t.sizes());  // [B, G, Lq, Lk]
  // The configured maximum length (or model.attention_divisor), not each
  // user's length, normalises: the same value in training, the block path and serving.
  return torch::silu(scores + bias.unsqueeze(1)) * (1.0 / attention_divisor_) * group.allowed.unsqueeze(1);
}

torch::Tensor HstuBlock::forward(const torch::Tensor& x, const AttentionPlan& plan, const torch::Tensor& memory_k,
                                 const torch::Tensor& memory_v, torch::Tensor* k_out, torch::Tensor* v_out) {
  const auto B = x.size(0), L = x.size(1);
  const int width = heads_ * head_dim_;
  auto normed = torch::layer_norm(x, {dim_}, {}, {}, kNormEps);
  auto projected = torch::silu(torch::matmul(normed, uvqk));  // [B, L, 4 H d]
  auto parts = projected.split(width, -1);
  const auto& u = parts[0];
  auto heads = [&](const torch::Tensor& t) { return t.view({B, L, heads_, head_dim_}).transpose(1, 2); };
  auto v = heads(parts[1]), q = heads(parts[2]), k = heads(parts[3]);  // [B, H, L, d]
  if (k_out != nullptr) *k_out = k;
  if (v_out != nullptr) *v_out = v;
  const AttentionScorer scorer = [this](const torch::Tensor& scores, const AttentionGroup& group) {
    auto weights = attention_weights(scores, group);
    return attn_dropout_ > 0 ? torch::dropout(weights, attn_dropout_, is_training()) : weights;
  };
  auto attended = attend(plan, q, k, v, scorer, memory_k, memory_v).transpose(1, 2).reshape({B, L, width});
  auto gated = u * torch::layer_norm(attended, {width}, {}, {}, kNormEps);
  return x + output(torch::dropout(gated, dropout_, is_training()));
}

Hstu::Hstu(const ModelConfig& config) : config_(config) {
  for (int b = 0; b < config.blocks; ++b) {
    blocks.push_back(register_module("block" + std::to_string(b), std::make_shared<HstuBlock>(config)));
  }
}

torch::Tensor Hstu::forward(const torch::Tensor& x, const AttentionPlan& plan, const KeyValueMemory* memory,
                            KeyValueMemory* capture) {
  if (capture != nullptr) *capture = {};
  auto y = x;
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    torch::Tensor k, v;
    const bool keep = capture != nullptr;
    y = blocks[b]->forward(y, plan, memory_keys(memory, b), memory_values(memory, b), keep ? &k : nullptr,
                           keep ? &v : nullptr);
    if (keep) {
      capture->keys.push_back(k);
      capture->values.push_back(v);
    }
  }
  return y;
}

double Hstu::flops_per_token(std::int64_t width) const {
  const double D = config_.dim, H = config_.heads, d = config_.resolved_head_dim(), L = static_cast<double>(width);
  const double per_block = 2 * D * 4 * H * d  // uvqk projection
                           + 2 * L * H * d    // q k^T
                           + 2 * L * H * d    // A v
                           + 2 * H * d * D;   // output linear
  return config_.blocks * per_block;
}

}  // namespace longrec::model
