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

// [hllm] section: the HLLM backbone (issue 16). The user LLM is sized by [model]
// (dim, blocks, heads, head_dim, ffn_dim) plus kv_heads; the item LLM, which
// turns each item's text into its vector, by the item_* keys (its hidden width
// is model.dim: its [ITEM] state is the item vector the user LLM reads).
struct HllmConfig {
  int kv_heads = 0;  // user LLM key/value heads (0 = model.heads)
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  int item_blocks = 0;             // item LLM layers (0 = model.blocks)
  int item_heads = 0;              // item LLM heads (0 = model.heads)
  int item_kv_heads = 0;           // (0 = item heads)
  int item_ffn_dim = 0;            // item LLM MLP width (0 = the user LLM's)
  int vocab_size = 0;              // item LLM vocabulary (0 = the tokenizer's, set when training starts)
  std::string tokenizer;           // SentencePiece model of the item texts
  std::string tokenizer_checksum;  // Tokenizer::checksum(), recorded when training starts
  std::string item_pretrained;     // Hugging Face Llama directory the item LLM starts from
  std::string prompt = "Compress the following sentence into embedding: ";
  int max_text_len = 64;                // BOS + prompt + text tokens, truncated; [ITEM] comes after
  bool bos = true;                      // start each item text with the tokenizer's BOS (when it has one)
  std::string pooling = "item_token";   // item_token (the [ITEM] state) | mean (of every text state)
  std::string logit_scale = "learned";  // learned (from ln(1 / init_temperature), clamped) | fixed (1 / temperature)
  double init_temperature = 0.07;
  double max_logit_scale = 100.0;  // the learned scale is clamped to [1, max] (ln: [0, ln max])
  double nce_threshold = 0.99;     // negatives whose cosine with the positive exceeds it are masked
  int encode_chunk = 1024;         // items per item-LLM forward when encoding the catalogue
};

struct ModelConfig {
  std::string size;               // optional descriptor, e.g. "hstu-d50-l2-h1"; sets the keys it names
  std::string backbone = "hstu";  // one of registered_backbones()
  int dim = 50;                   // D: item embedding and residual width
  int blocks = 2;
  int heads = 1;
  int head_dim = 0;   // per-head q/k/v width; 0 = dim / heads
  int max_len = 200;  // N_max: HSTU's attention normaliser and the position tables
  // HSTU: divide attention by this instead of max_len (0 = max_len). The HSTU
  // reference divides by its padded length, max_sequence_len + max_output_len
  // (200 + 11 = 211 in its ML-1M config).
  int attention_divisor = 0;
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
  HllmConfig hllm;                        // [hllm] section; read only by the hllm backbone

  int resolved_head_dim() const { return head_dim > 0 ? head_dim : dim / heads; }
  int resolved_attention_divisor() const { return attention_divisor > 0 ? attention_divisor : max_len; }
  // SASRec's FFN (0 = dim); the Llama MLP of hllm (0 = 4 dim).
  int resolved_ffn_dim() const { return ffn_dim > 0 ? ffn_dim : (backbone == "hllm" ? 4 * dim : dim); }
  // A copy with the derived defaults filled in (head_dim, ffn_dim; an
  // attention_divisor equal to max_len becomes 0): two configurations that
  // build the same model compare equal field by field.
  ModelConfig resolved() const;
  std::string describe() const;  // "hstu-d50-l2-h1"
};

// The names `model.backbone` accepts (kBackboneNames of backbone_names.h).
std::vector<std::string> registered_backbones();

// One field of the table, as tests and tools see it.
struct ModelField {
  std::string key;    // "model.dim", "personalization.segment_len", "hllm.tokenizer"
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
