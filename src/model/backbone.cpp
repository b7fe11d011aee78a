#include "longrec/model/backbone.h"

#include <cmath>

#include "longrec/core/error.h"

namespace longrec::model {

namespace {
constexpr double kNormEps = 1e-6;
// ln(2) rounded as in the reference bucketisation: one bucket per doubling.
constexpr double kLogBucketWidth = 0.301;
}  // namespace

torch::Tensor hstu_time_buckets(const torch::Tensor& query_times, const torch::Tensor& key_times, int num_buckets) {
  // [B, L, 1] - [B, 1, L]
  auto dt = (query_times.unsqueeze(2) - key_times.unsqueeze(1)).abs().clamp_min(1).to(torch::kFloat64);
  return (dt.log() / kLogBucketWidth).floor().clamp(0, num_buckets).to(torch::kInt64);
}

torch::Tensor causal_valid_mask(const torch::Tensor& valid, torch::Dtype dtype) {
  const auto L = valid.size(1);
  auto causal = torch::ones({L, L}, torch::TensorOptions().dtype(torch::kBool).device(valid.device())).tril();
  return (causal.unsqueeze(0) & valid.unsqueeze(1)).unsqueeze(1).to(dtype);  // [B, 1, L, L]
}

// ---------------------------------------------------------------------------
// HSTU

HstuBlock::HstuBlock(const ModelConfig& c)
    : dim_(c.dim),
      heads_(c.heads),
      head_dim_(c.resolved_head_dim()),
      max_len_(c.max_len),
      dropout_(c.dropout),
      attn_dropout_(c.attn_dropout) {
  const int width = heads_ * head_dim_;
  uvqk = register_parameter("uvqk", torch::empty({dim_, 4 * width}).normal_(0, 0.02));
  position_weights = register_parameter("position_bias", torch::empty({2 * max_len_ - 1}).normal_(0, 0.02));
  time_weights = register_parameter("time_bias", torch::empty({c.time_buckets + 1}).normal_(0, 0.02));
  output = register_module("output", torch::nn::Linear(width, dim_));
  torch::nn::init::xavier_uniform_(output->weight);
}

torch::Tensor HstuBlock::attention_weights(const torch::Tensor& q, const torch::Tensor& k,
                                           const torch::Tensor& causal_mask, const torch::Tensor& position_index,
                                           const torch::Tensor& time_buckets) {
  const auto B = q.size(0), L = q.size(2);
  auto scores = torch::matmul(q, k.transpose(-1, -2));  // [B, H, L, L]
  auto bias = position_weights.index_select(0, position_index.reshape({-1})).view({1, L, L}) +
              time_weights.index_select(0, time_buckets.reshape({-1})).view({B, L, L});
  scores = scores + bias.unsqueeze(1);
  // The configured maximum length, not each user's length, normalises: the
  // same value in training, the block path and serving.
  return torch::silu(scores) * (1.0 / max_len_) * causal_mask;
}

torch::Tensor HstuBlock::forward(const torch::Tensor& x, const torch::Tensor& causal_mask,
                                 const torch::Tensor& position_index, const torch::Tensor& time_buckets) {
  const auto B = x.size(0), L = x.size(1);
  const int width = heads_ * head_dim_;
  auto normed = torch::layer_norm(x, {dim_}, {}, {}, kNormEps);
  auto projected = torch::silu(torch::matmul(normed, uvqk));  // [B, L, 4 H d]
  auto parts = projected.split(width, -1);
  const auto& u = parts[0];
  auto heads = [&](const torch::Tensor& t) { return t.view({B, L, heads_, head_dim_}).transpose(1, 2); };
  auto v = heads(parts[1]), q = heads(parts[2]), k = heads(parts[3]);  // [B, H, L, d]
  auto weights = attention_weights(q, k, causal_mask, position_index, time_buckets);
  if (attn_dropout_ > 0) weights = torch::dropout(weights, attn_dropout_, is_training());
  auto attended = torch::matmul(weights, v).transpose(1, 2).reshape({B, L, width});
  auto gated = u * torch::layer_norm(attended, {width}, {}, {}, kNormEps);
  return x + output(torch::dropout(gated, dropout_, is_training()));
}

Hstu::Hstu(const ModelConfig& config) : config_(config) {
  for (int b = 0; b < config.blocks; ++b) {
    blocks.push_back(register_module("block" + std::to_string(b), std::make_shared<HstuBlock>(config)));
  }
}

torch::Tensor Hstu::forward(const torch::Tensor& x, const SequenceBatch& batch) {
  const auto L = x.size(1);
  LONGREC_CHECK(L <= config_.max_len, "sequence width {} exceeds model.max_len {}", L, config_.max_len);
  auto mask = causal_valid_mask(batch.valid, x.scalar_type());
  auto positions = torch::arange(L, torch::TensorOptions().dtype(torch::kInt64).device(x.device()));
  auto position_index = config_.max_len - 1 + positions.unsqueeze(0) - positions.unsqueeze(1);  // [L, L]: j - i
  auto buckets = hstu_time_buckets(batch.query_times, batch.times, config_.time_buckets);
  auto y = x;
  for (auto& block : blocks) y = block->forward(y, mask, position_index, buckets);
  return y;
}

double Hstu::flops_per_token(std::int64_t width) const {
  const double D = config_.dim, H = config_.heads, d = config_.resolved_head_dim(), L = static_cast<double>(width);
  const double per_block = 2 * D * 4 * H * d   // uvqk projection
                           + 2 * L * H * d     // q k^T
                           + 2 * L * H * d     // A v
                           + 2 * H * d * D;    // output linear
  return config_.blocks * per_block;
}

// ---------------------------------------------------------------------------
// SASRec

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

torch::Tensor SasrecBlock::forward(const torch::Tensor& input, const torch::Tensor& allowed,
                                   const torch::Tensor& keep) {
  const auto B = input.size(0), L = input.size(1);
  auto heads = [&](const torch::Tensor& t) { return t.view({B, L, heads_, head_dim_}).transpose(1, 2); };
  // Queries from the normalised input, keys and values from the raw input, as in the original.
  auto q_in = attention_norm(input);
  auto scores = torch::matmul(heads(query(q_in)), heads(key(input)).transpose(-1, -2)) / std::sqrt(head_dim_);
  scores = scores.masked_fill(allowed.logical_not(), -1e9);
  auto weights = torch::dropout(torch::softmax(scores, -1), attn_dropout_, is_training());
  auto attended = torch::matmul(weights, heads(value(input))).transpose(1, 2).reshape({B, L, heads_ * head_dim_});
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

torch::Tensor Sasrec::forward(const torch::Tensor& input, const SequenceBatch& batch) {
  auto allowed = causal_valid_mask(batch.valid, torch::kFloat32).to(torch::kBool);  // [B, 1, L, L]
  auto keep = batch.valid.unsqueeze(-1).to(input.scalar_type());
  auto x = input;
  for (auto& block : blocks_) x = block->forward(x, allowed, keep);
  return last_norm_(x);
}

double Sasrec::flops_per_token(std::int64_t width) const {
  const double D = config_.dim, H = config_.heads, d = config_.resolved_head_dim(), F = config_.resolved_ffn_dim();
  const double L = static_cast<double>(width);
  const double per_block = 2 * D * 3 * H * d  // q, k, v
                           + 2 * L * H * d * 2  // scores and weighted values
                           + 2 * H * d * D      // attention output
                           + 2 * D * F * 2;     // FFN
  return config_.blocks * per_block;
}

std::shared_ptr<Backbone> make_backbone(const ModelConfig& config) {
  if (config.backbone == "hstu") return std::make_shared<Hstu>(config);
  if (config.backbone == "sasrec") return std::make_shared<Sasrec>(config);
  throw ConfigError("model.backbone", fmt::format("got '{}', expected hstu or sasrec", config.backbone));
}

}  // namespace longrec::model
