#include "longrec/model/backbones/sasrec.h"

#include <cmath>

namespace longrec::model {

namespace {
torch::nn::LayerNorm sasrec_norm(int dim) { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-8)); }
}  // namespace

SasrecBlock::SasrecBlock(const ModelConfig& c)
    : heads_(c.heads), head_dim_(c.resolved_head_dim()), dropout_(c.dropout), attn_dropout_(c.attn_dropout) {
  const int width = heads_ * head_dim_;
  attention_norm = register_module("attention_norm", sasrec_norm(c.dim));
  query = register_module("query", torch::nn::Linear(c.dim, width));
  key = register_module("key", torch::nn::Linear(c.dim, width));
  value = register_module("value", torch::nn::Linear(c.dim, width));
  attention_out = register_module("attention_out", torch::nn::Linear(width, c.dim));
  ffn_norm = register_module("ffn_norm", sasrec_norm(c.dim));
  ffn_in = register_module("ffn_in", torch::nn::Linear(c.dim, c.resolved_ffn_dim()));
  ffn_out = register_module("ffn_out", torch::nn::Linear(c.resolved_ffn_dim(), c.dim));
}

torch::Tensor SasrecBlock::forward(const torch::Tensor& input, const AttentionPlan& plan, const torch::Tensor& keep,
                                   const torch::Tensor& memory_k, const torch::Tensor& memory_v, torch::Tensor* k_out,
                                   torch::Tensor* v_out) {
  const auto B = input.size(0), L = input.size(1);
  auto heads = [&](const torch::Tensor& t) { return t.view({B, L, heads_, head_dim_}).transpose(1, 2); };
  // Queries from the normalised input, keys and values from the raw input, as in the original.
  auto q_in = attention_norm(input);
  auto k = heads(key(input)), v = heads(value(input));
  if (k_out != nullptr) *k_out = k;
  if (v_out != nullptr) *v_out = v;
  const double scale = 1.0 / std::sqrt(head_dim_);
  const AttentionScorer scorer = [&](const torch::Tensor& scores, const AttentionGroup& group) {
    // A query with no allowed key (padding) gets uniform weights, zeroed by `keep`.
    auto masked = (scores * scale).masked_fill(group.allowed.unsqueeze(1).logical_not(), -1e9);
    return torch::dropout(torch::softmax(masked, -1), attn_dropout_, is_training());
  };
  auto attended = attend(plan, heads(query(q_in)), k, v, scorer, memory_k, memory_v)
                      .transpose(1, 2)
                      .reshape({B, L, heads_ * head_dim_});
  auto x = ffn_norm(q_in + attention_out(attended));
  auto hidden = torch::relu(torch::dropout(ffn_in(x), dropout_, is_training()));
  x = x + torch::dropout(ffn_out(hidden), dropout_, is_training());
  return x * keep;
}

Sasrec::Sasrec(const ModelConfig& c) : config_(c) {
  for (int b = 0; b < c.blocks; ++b) {
    blocks_.push_back(register_module("block" + std::to_string(b), std::make_shared<SasrecBlock>(c)));
  }
  last_norm_ = register_module("last_norm", sasrec_norm(c.dim));
}

torch::Tensor Sasrec::forward(const torch::Tensor& input, const AttentionPlan& plan, const KeyValueMemory* memory,
                              KeyValueMemory* capture) {
  auto keep = plan.valid.unsqueeze(-1).to(input.scalar_type());
  if (capture != nullptr) *capture = {};
  auto x = input;
  for (std::size_t b = 0; b < blocks_.size(); ++b) {
    torch::Tensor k, v;
    const bool save = capture != nullptr;
    x = blocks_[b]->forward(x, plan, keep, memory_keys(memory, b), memory_values(memory, b), save ? &k : nullptr,
                            save ? &v : nullptr);
    if (save) {
      capture->keys.push_back(k);
      capture->values.push_back(v);
    }
  }
  return last_norm_(x);
}

double Sasrec::flops_per_token(std::int64_t width) const {
  const double D = config_.dim, H = config_.heads, d = config_.resolved_head_dim(), F = config_.resolved_ffn_dim();
  const double L = static_cast<double>(width);
  const double per_block = 2 * D * 3 * H * d    // q, k, v
                           + 2 * L * H * d * 2  // scores and weighted values
                           + 2 * H * d * D      // attention output
                           + 2 * D * F * 2;     // FFN
  return config_.blocks * per_block;
}

}  // namespace longrec::model
