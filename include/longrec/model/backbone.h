// Backbones: a stack of causal blocks over [B, L, D] that any sequential
// recommender (and the personalization-token layer) runs.
#pragma once

#include <torch/torch.h>

#include "longrec/model/attention_plan.h"
#include "longrec/model/model_config.h"

namespace longrec::model {

// Per-layer keys and values of slots outside the current sequence: the cached
// personalization tokens of a serving state ([B, H, M, d] each), or what a
// forward pass computed for its own slots ([B, H, L, d]) when asked to capture.
struct KeyValueMemory {
  std::vector<torch::Tensor> keys, values;
};

class Backbone : public torch::nn::Module {
 public:
  // x: [B, L, D] input slots; plan: who attends to whom (its relative
  // features present when uses_relative_bias()); memory: cached keys/values
  // ahead of the slots (plan.memory of them); capture: receives every layer's
  // keys/values of the L slots. Returns [B, L, D].
  virtual torch::Tensor forward(const torch::Tensor& x, const AttentionPlan& plan,
                                const KeyValueMemory* memory = nullptr, KeyValueMemory* capture = nullptr) = 0;
  // Whether plans for this backbone need position_index / time_bucket.
  virtual bool uses_relative_bias() const = 0;
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
  // memory_k / memory_v: [B, H, M, d] cached slots or undefined; k_out / v_out
  // (optional) receive this block's keys/values [B, H, L, d].
  torch::Tensor forward(const torch::Tensor& x, const AttentionPlan& plan, const torch::Tensor& memory_k = {},
                        const torch::Tensor& memory_v = {}, torch::Tensor* k_out = nullptr,
                        torch::Tensor* v_out = nullptr);
  // A = silu(scores + rab) / N_max on the group's allowed pairs, 0 elsewhere;
  // scores: [B, H, G, Lq, Lk] = q k^T.
  torch::Tensor attention_weights(const torch::Tensor& scores, const AttentionGroup& group);

  torch::Tensor uvqk, position_weights, time_weights;
  torch::nn::Linear output{nullptr};

 private:
  int dim_, heads_, head_dim_, max_len_;
  double dropout_, attn_dropout_;
};

class Hstu : public Backbone {
 public:
  explicit Hstu(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const AttentionPlan& plan, const KeyValueMemory* memory = nullptr,
                        KeyValueMemory* capture = nullptr) override;
  bool uses_relative_bias() const override { return true; }
  double flops_per_token(std::int64_t width) const override;
  std::vector<std::shared_ptr<HstuBlock>> blocks;

 private:
  ModelConfig config_;
};

// SASRec (Kang & McAuley 2018): Q = LN(x); x = Q + MHA(Q, x, x) (causal softmax);
// x = LN(x); x = x + FFN(x) (ReLU, dropout); padding zeroed; final LN.
class SasrecBlock : public torch::nn::Module {
 public:
  explicit SasrecBlock(const ModelConfig& config);
  // keep: [B, L, 1], zero on padding slots; memory and outputs as HstuBlock.
  torch::Tensor forward(const torch::Tensor& x, const AttentionPlan& plan, const torch::Tensor& keep,
                        const torch::Tensor& memory_k = {}, const torch::Tensor& memory_v = {},
                        torch::Tensor* k_out = nullptr, torch::Tensor* v_out = nullptr);

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
  torch::Tensor forward(const torch::Tensor& x, const AttentionPlan& plan, const KeyValueMemory* memory = nullptr,
                        KeyValueMemory* capture = nullptr) override;
  bool uses_relative_bias() const override { return false; }
  double flops_per_token(std::int64_t width) const override;

 private:
  ModelConfig config_;
  std::vector<std::shared_ptr<SasrecBlock>> blocks_;
  torch::nn::LayerNorm last_norm_{nullptr};
};

std::shared_ptr<Backbone> make_backbone(const ModelConfig& config);

}  // namespace longrec::model
