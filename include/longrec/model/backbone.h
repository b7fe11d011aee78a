// Backbones: a stack of causal blocks over [B, L, D] that any sequential
// recommender (and the personalization-token layer) runs. Each backbone lives
// in its own file under model/backbones/ and is registered by name in
// src/model/backbones/registry.cpp; `model.backbone` picks one.
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

// Layer `layer`'s cached keys (or values) of an optional memory; undefined without one.
inline torch::Tensor memory_keys(const KeyValueMemory* memory, std::size_t layer) {
  return memory == nullptr ? torch::Tensor() : memory->keys.at(layer);
}
inline torch::Tensor memory_values(const KeyValueMemory* memory, std::size_t layer) {
  return memory == nullptr ? torch::Tensor() : memory->values.at(layer);
}

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

// A new backbone of the configured kind (`config.backbone`, one of
// registered_backbones()); ConfigError("model.backbone") naming the registered
// ones otherwise.
std::shared_ptr<Backbone> make_backbone(const ModelConfig& config);

}  // namespace longrec::model
