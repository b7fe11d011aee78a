// Model configuration ([model] section), torch-free so that the CLI and the
// config checks compile without LibTorch.
//
// Size descriptors such as `hstu-d64-l8-h2` (backbone, width, blocks, heads)
// set several keys at once so that a scaling sweep varies one value.
#pragma once

#include <cstdint>
#include <string>

#include "longrec/model/personalization_layout.h"

namespace longrec {
class OptionRegistry;
}

namespace longrec::model {

struct ModelConfig {
  std::string size;            // optional descriptor, e.g. "hstu-d50-l2-h1"; overrides the keys it names
  std::string backbone = "hstu";  // hstu | sasrec
  int dim = 50;                // D: item embedding and residual width
  int blocks = 2;
  int heads = 1;
  int head_dim = 0;            // per-head q/k/v width; 0 = dim / heads
  int max_len = 200;           // N_max: HSTU's attention normaliser and the position tables
  double dropout = 0.2;        // input and block output dropout
  double attn_dropout = 0.0;
  int ffn_dim = 0;             // SASRec point-wise FFN width; 0 = dim
  int time_buckets = 128;      // HSTU log-time buckets (the reference's 128)
  double temperature = 0.05;   // cosine logits are divided by it
  int num_negatives = 128;
  std::string negatives = "per_position";  // per_position | shared (one pool per batch)
  bool in_batch_negatives = false;
  std::uint64_t seed = 1;
  PersonalizationConfig personalization;  // [personalization] section; off unless a segment length or groups are set

  int resolved_head_dim() const { return head_dim > 0 ? head_dim : dim / heads; }
  int resolved_ffn_dim() const { return ffn_dim > 0 ? ffn_dim : dim; }
  std::string describe() const;  // "hstu-d50-l2-h1"
};

// Registers [model] keys; checks that run after parsing reject combinations
// that cannot work (heads not dividing the width, ...), naming the key.
void register_model_options(OptionRegistry& registry, ModelConfig& config);

// Applies a descriptor "<backbone>-d<dim>-l<blocks>-h<heads>" (parts optional
// after the backbone); throws ConfigError("model.size") on a malformed one.
void apply_size_descriptor(ModelConfig& config, const std::string& descriptor);

// Throws ConfigError naming the key when the configuration cannot work.
void validate_model_config(const ModelConfig& config);

}  // namespace longrec::model
