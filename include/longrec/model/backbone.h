// Backbones: a stack of causal blocks over [B, L, D] that any sequential
// recommender (and the personalization-token layer) runs.
#pragma once

#include <torch/torch.h>

#include "longrec/model/model_config.h"
#include "longrec/model/sequence_batch.h"

namespace longrec::model {

class Backbone : public torch::nn::Module {
 public:
  // x: [B, L, D] input embeddings; returns [B, L, D].
  virtual torch::Tensor forward(const torch::Tensor& x, const SequenceBatch& batch) = 0;
  // Forward FLOPs per position for a sequence of width L, counting the dense
  // matrix products the implementation executes (masked attention included).
  virtual double flops_per_token(std::int64_t width) const = 0;
};

// HSTU (Zhai et al. 2024), as the reference research implementation:
//   n = LayerNorm(x) (no affine, eps 1e-6)
//   u, v, q, k = split(silu(n W_uvqk))                  W ~ N(0, 0.02), no bias
//   A = silu(q k^T + rab_pos + rab_time) / N_max, causal  (no softmax, no 1/sqrt(d))
//   y = x + Linear(dropout(u * LayerNorm(A v)))          (no FFN, no final norm)
// rab_pos[i, j] = w_pos[N_max - 1 + j - i]; rab_time[i, j] = w_time[bucket(t_next(i) - t_j)],
// bucket(dt) = clamp(floor(ln(max(|dt|, 1)) / 0.301), 0, time_buckets).
class HstuBlock : public torch::nn::Module {
 public:
  HstuBlock(const ModelConfig& config);
  // causal_mask: [B, 1, L, L] float {0, 1}; position_index: [L, L] into w_pos;
  // time_buckets: [B, L, L] int64 into w_time.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& causal_mask, const torch::Tensor& position_index,
                        const torch::Tensor& time_buckets);
  // The attention weights A [B, H, L, L] (for tests against a naive loop).
  torch::Tensor attention_weights(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& causal_mask,
                                  const torch::Tensor& position_index, const torch::Tensor& time_buckets);

  torch::Tensor uvqk, position_weights, time_weights;
  torch::nn::Linear output{nullptr};

 private:
  int dim_, heads_, head_dim_, max_len_;
  double dropout_, attn_dropout_;
};

class Hstu : public Backbone {
 public:
  explicit Hstu(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const SequenceBatch& batch) override;
  double flops_per_token(std::int64_t width) const override;
  std::vector<std::shared_ptr<HstuBlock>> blocks;

 private:
  ModelConfig config_;
};

// bucket(t_next(i) - t_j) for every (i, j): [B, L, L] int64.
torch::Tensor hstu_time_buckets(const torch::Tensor& query_times, const torch::Tensor& key_times, int num_buckets);
// Lower-triangular mask restricted to valid keys: [B, 1, L, L] float.
torch::Tensor causal_valid_mask(const torch::Tensor& valid, torch::Dtype dtype);

// SASRec (Kang & McAuley 2018): Q = LN(x); x = Q + MHA(Q, x, x) (causal softmax);
// x = LN(x); x = x + FFN(x) (ReLU, dropout); padding zeroed; final LN.
class SasrecBlock : public torch::nn::Module {
 public:
  explicit SasrecBlock(const ModelConfig& config);
  // allowed: [B, 1, L, L] bool; keep: [B, L, 1] float.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& allowed, const torch::Tensor& keep);

 private:
  int heads_, head_dim_;
  double dropout_, attn_dropout_;
  torch::nn::LayerNorm attention_norm{nullptr}, ffn_norm{nullptr};
  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr}, attention_out{nullptr}, ffn_in{nullptr},
      ffn_out{nullptr};
};

class Sasrec : public Backbone {
 public:
  explicit Sasrec(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const SequenceBatch& batch) override;
  double flops_per_token(std::int64_t width) const override;

 private:
  ModelConfig config_;
  std::vector<std::shared_ptr<SasrecBlock>> blocks_;
  torch::nn::LayerNorm last_norm_{nullptr};
};

std::shared_ptr<Backbone> make_backbone(const ModelConfig& config);

}  // namespace longrec::model
