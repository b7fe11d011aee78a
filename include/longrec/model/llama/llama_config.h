// The sizes of the Llama decoder blocks (llama.h), from a size descriptor or a Hugging Face
// config.json. Torch-free (in longrec_model_config): config.json is outside input, read under
// the sanitizers and fuzzed (tests/fuzz/fuzz_llama_config.cpp).
#pragma once

#include <cstdint>
#include <string>

namespace longrec::model::llama {

struct LlamaConfig {
  int64_t vocab_size = 32000;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_attention_heads unless config.json sets it
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;  // the model has no LM head; load_state checks lm_head.weight against it

  // A size descriptor: llama-d<hidden>-l<layers>-h<heads>[-kv<kv heads>][-i<intermediate>][-v<vocab>]
  // (kv defaults to h, i to 4 d, v to 32000), e.g. llama-d128-l2-h4-kv2. Throws ConfigError("llama.size").
  static LlamaConfig from_descriptor(const std::string& descriptor);
  // The text of a Hugging Face config.json. Keys this code does not implement (rope_scaling other
  // than null or "default", attention_bias / mlp_bias true, hidden_act other than silu, a nonzero
  // attention_dropout, a model_type other than llama, any key it does not know) are refused by
  // name: ConfigError("config.json:<key>", why).
  static LlamaConfig from_hf_json(const std::string& json_text);
  static LlamaConfig from_hf_file(const std::string& path);
  // Throws ConfigError naming the first inconsistent or out-of-range field.
  void validate() const;
};

}  // namespace longrec::model::llama
