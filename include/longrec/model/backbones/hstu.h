// HSTU backbone (registered as "hstu").
#pragma once

#include <torch/torch.h>

#include "longrec/model/backbone.h"

namespace longrec::model {

// HSTU (Zhai et al. 2024), as the reference research implementation:
//   n = LayerNorm(x) (no affine, eps 1e-6)
//   u, v, q, k = split(silu(n W_uvqk))                  W ~ N(0, 0.02), no bias
//   A = silu(q k^T + rab_pos + rab_time) / N_max, causal  (no softmax, no 1/sqrt(d);
//       N_max = model.max_len, or model.attention_divisor when set: the reference's 211 on ML-1M)
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
  int attention_divisor_;  // N_max, or model.attention_divisor when set
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

}  // namespace longrec::model
