// Model configuration ([model] and [personalization] sections), torch-free so
// that the CLI and the config checks compile without LibTorch.
//
// One table in model_config.cpp lists every field once (section, key, type,
// default, check, help, role) and drives the CLI options, the JSON stored in
// checkpoint manifests and bundles, the compatibility check on resume and
// load, and the serving UserState signature: adding a field is one row there
// plus the struct member here.
//
// Size descriptors such as `hstu-d64-l8-h2` (backbone, width, blocks, heads)
// set several keys at once so that a scaling sweep varies one value; giving
// one of those keys too with another value is a conflict (ConfigError).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "longrec/model/personalization_layout.h"

namespace longrec {
class OptionRegistry;
}

namespace longrec::model {

struct ModelConfig {
  std::string size;               // optional descriptor, e.g. "hstu-d50-l2-h1"; sets the keys it names
  std::string backbone = "hstu";  // one of registered_backbones()
  int dim = 50;                   // D: item embedding and residual width
  int blocks = 2;
  int heads = 1;
  int head_dim = 0;      // per-head q/k/v width; 0 = dim / heads
  int max_len = 200;     // N_max: HSTU's attention normaliser and the position tables
  double dropout = 0.2;  // input and block output dropout
  double attn_dropout = 0.0;
  int ffn_dim = 0;            // SASRec point-wise FFN width; 0 = dim
  int time_buckets = 128;     // HSTU log-time buckets (the reference's 128)
  double temperature = 0.05;  // cosine logits are divided by it
  int num_negatives = 128;
  std::string negatives = "per_position";  // per_position | shared (one pool per batch)
  bool in_batch_negatives = false;
  std::uint64_t seed = 1;
  PersonalizationConfig personalization;  // [personalization] section; off unless a segment length or groups are set

  int resolved_head_dim() const { return head_dim > 0 ? head_dim : dim / heads; }
  int resolved_ffn_dim() const { return ffn_dim > 0 ? ffn_dim : dim; }
  // A copy with the derived defaults filled in (head_dim, ffn_dim): two
  // configurations that build the same model compare equal field by field.
  ModelConfig resolved() const;
  std::string describe() const;  // "hstu-d50-l2-h1"
};

// The names `model.backbone` accepts (kBackboneNames of backbone_names.h).
std::vector<std::string> registered_backbones();

// One field of the table, as tests and tools see it.
struct ModelField {
  std::string key;    // "model.dim", "personalization.segment_len"
  std::string type;   // int | double | string | bool | uint64
  bool architecture;  // decides the weights' shapes or the attention layout: must match on resume / load
  bool stored;        // kept in manifests and bundles (all but the size descriptor)
};
const std::vector<ModelField>& model_fields();
// A field's value as text, and the reverse (throws ConfigError naming the key on a malformed value).
std::string model_field_value(const ModelConfig& config, const std::string& key);
void set_model_field(ModelConfig& config, const std::string& key, const std::string& value);

// Registers every [model] and [personalization] key; checks that run after
// parsing reject combinations that cannot work (heads not dividing the
// width, ...), naming the key.
void register_model_options(OptionRegistry& registry, ModelConfig& config);

// Applies a descriptor "<backbone>-d<dim>-l<blocks>-h<heads>" (parts optional
// after the backbone); throws ConfigError("model.size") on a malformed one.
void apply_size_descriptor(ModelConfig& config, const std::string& descriptor);

// Throws ConfigError naming the key when the configuration cannot work.
void validate_model_config(const ModelConfig& config);

// JSON of every stored field ({"backbone": ..., "personalization": {...}}), as
// manifests and bundles hold it, and the reverse. Reading refuses a missing
// [model] key or a value of the wrong type with a DataError naming the key;
// [personalization] keys are optional (manifests written before them).
std::string model_config_to_json(const ModelConfig& config);
ModelConfig model_config_from_json(const std::string& text);

// Throws ConfigError naming the first architecture field that differs
// (resolved values), e.g. "<what> was trained with model.dim = 64, this
// configuration has 50".
void check_same_architecture(const ModelConfig& saved, const ModelConfig& config, const std::string& what);

// Every architecture field, resolved, as "key=value ..." (what a serving
// state was computed with).
std::string architecture_signature(const ModelConfig& config);

}  // namespace longrec::model
