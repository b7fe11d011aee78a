// SASRec backbone (registered as "sasrec"), the baseline of every table.
#pragma once

#include <torch/torch.h>

#include "longrec/model/backbone.h"

namespace longrec::model {

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

}  // namespace longrec::model
