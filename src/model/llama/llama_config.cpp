#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "longrec/core/error.h"
#include "longrec/model/llama/llama_config.h"

namespace longrec::model::llama {

LlamaConfig LlamaConfig::from_descriptor(const std::string& descriptor) {
  static const std::regex pattern(
      R"(llama-d(\d{1,6})-l(\d{1,4})-h(\d{1,4})(?:-kv(\d{1,4}))?(?:-i(\d{1,7}))?(?:-v(\d{1,9}))?)");
  std::smatch m;
  if (!std::regex_match(descriptor, m, pattern)) {
    throw ConfigError("llama.size", fmt::format("'{}' is not a Llama size descriptor; expected "
                                                "llama-d<hidden>-l<layers>-h<heads>[-kv<kv heads>][-i<intermediate>]"
                                                "[-v<vocab>], e.g. llama-d128-l2-h4-kv2",
                                                descriptor));
  }
  LlamaConfig c;
  c.hidden_size = std::stoll(m[1]);
  c.num_hidden_layers = std::stoll(m[2]);
  c.num_attention_heads = std::stoll(m[3]);
  c.num_key_value_heads = m[4].matched ? std::stoll(m[4]) : c.num_attention_heads;
  c.intermediate_size = m[5].matched ? std::stoll(m[5]) : 4 * c.hidden_size;
  if (m[6].matched) c.vocab_size = std::stoll(m[6]);
  c.head_dim = c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
  if (c.num_attention_heads <= 0 || c.hidden_size % c.num_attention_heads != 0) {
    throw ConfigError("llama.size", fmt::format("'{}': hidden size {} is not a multiple of {} heads", descriptor,
                                                c.hidden_size, c.num_attention_heads));
  }
  c.validate();
  return c;
}

void LlamaConfig::validate() const {
  auto positive = [](const char* key, int64_t v) {
    if (v <= 0) throw ConfigError(key, fmt::format("must be positive, got {}", v));
  };
  positive("llama.vocab_size", vocab_size);
  positive("llama.hidden_size", hidden_size);
  positive("llama.intermediate_size", intermediate_size);
  positive("llama.num_hidden_layers", num_hidden_layers);
  positive("llama.num_attention_heads", num_attention_heads);
  positive("llama.num_key_value_heads", num_key_value_heads);
  positive("llama.head_dim", head_dim);
  positive("llama.max_position_embeddings", max_position_embeddings);
  // Bounds far above any Llama (8192 hidden, 28672 intermediate, 128256 vocab, 126 layers) that
  // keep products of sizes far from overflow.
  auto at_most = [](const char* key, int64_t v, int64_t limit) {
    if (v > limit) throw ConfigError(key, fmt::format("{} is above the supported {}", v, limit));
  };
  at_most("llama.vocab_size", vocab_size, int64_t{1} << 24);
  at_most("llama.hidden_size", hidden_size, int64_t{1} << 18);
  at_most("llama.intermediate_size", intermediate_size, int64_t{1} << 20);
  at_most("llama.num_hidden_layers", num_hidden_layers, 4096);
  at_most("llama.num_attention_heads", num_attention_heads, 4096);
  at_most("llama.num_key_value_heads", num_key_value_heads, 4096);
  at_most("llama.head_dim", head_dim, int64_t{1} << 14);
  at_most("llama.max_position_embeddings", max_position_embeddings, int64_t{1} << 30);
  if (num_attention_heads % num_key_value_heads != 0) {
    throw ConfigError("llama.num_key_value_heads", fmt::format("{} does not divide num_attention_heads {}",
                                                               num_key_value_heads, num_attention_heads));
  }
  if (head_dim % 2 != 0) {
    throw ConfigError("llama.head_dim", fmt::format("rotary embeddings need an even head_dim, got {}", head_dim));
  }
  if (!(rms_norm_eps > 0 && rms_norm_eps < 1))
    throw ConfigError("llama.rms_norm_eps", fmt::format("must be in (0, 1), got {}", rms_norm_eps));
  if (!(rope_theta > 1 && rope_theta < 1e12)) {
    throw ConfigError("llama.rope_theta", fmt::format("must be in (1, 1e12), got {}", rope_theta));
  }
}

namespace {

using nlohmann::json;

std::string where(const std::string& key) { return "config.json:" + key; }

int64_t get_int(const json& j, const std::string& key) {
  const auto& v = j.at(key);
  if (!v.is_number_integer()) throw ConfigError(where(key), fmt::format("expected an integer, got {}", v.dump()));
  return v.get<int64_t>();
}

double get_number(const json& j, const std::string& key) {
  const auto& v = j.at(key);
  if (!v.is_number()) throw ConfigError(where(key), fmt::format("expected a number, got {}", v.dump()));
  return v.get<double>();
}

bool get_bool(const json& j, const std::string& key) {
  const auto& v = j.at(key);
  if (!v.is_boolean()) throw ConfigError(where(key), fmt::format("expected true or false, got {}", v.dump()));
  return v.get<bool>();
}

}  // namespace

LlamaConfig LlamaConfig::from_hf_json(const std::string& json_text) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    throw ConfigError("config.json", fmt::format("not JSON: {}", e.what()));
  }
  if (!j.is_object()) throw ConfigError("config.json", "expected a JSON object");

  // Keys that change nothing in the hidden states (token ids of the tokenizer, bookkeeping,
  // generation and initialisation settings; pretraining_tp only splits the same matmuls).
  static const std::set<std::string> ignored = {"architectures",
                                                "bos_token_id",
                                                "eos_token_id",
                                                "pad_token_id",
                                                "dtype",
                                                "torch_dtype",
                                                "transformers_version",
                                                "use_cache",
                                                "initializer_range",
                                                "pretraining_tp",
                                                "_name_or_path",
                                                "output_attentions",
                                                "output_hidden_states",
                                                "return_dict",
                                                "id2label",
                                                "label2id"};
  // Keys read below, or checked to hold the one value implemented.
  static const std::set<std::string> handled = {
      "vocab_size",          "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
      "num_key_value_heads", "head_dim",    "rms_norm_eps",      "rope_theta",        "max_position_embeddings",
      "tie_word_embeddings", "model_type",  "hidden_act",        "attention_bias",    "mlp_bias",
      "attention_dropout",   "rope_scaling"};
  for (const auto& [key, value] : j.items()) {
    if (!ignored.count(key) && !handled.count(key)) {
      throw ConfigError(where(key),
                        "not implemented by longrec's Llama blocks (an unknown key is refused, not "
                        "ignored)");
    }
  }
  for (const char* key :
       {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"}) {
    if (!j.contains(key)) throw ConfigError(where(key), "missing");
  }
  if (j.contains("model_type") && j["model_type"] != "llama") {
    throw ConfigError(where("model_type"),
                      fmt::format("only \"llama\" is implemented, got {}", j["model_type"].dump()));
  }
  if (j.contains("hidden_act") && j["hidden_act"] != "silu") {
    throw ConfigError(where("hidden_act"),
                      fmt::format("only \"silu\" (SwiGLU) is implemented, got {}", j["hidden_act"].dump()));
  }
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    if (j.contains(key) && get_bool(j, key)) {
      throw ConfigError(where(key), "true is not implemented (the blocks have no biases)");
    }
  }
  if (j.contains("attention_dropout") && get_number(j, "attention_dropout") != 0.0) {
    throw ConfigError(where("attention_dropout"),
                      fmt::format("{} is not implemented (only 0)", j["attention_dropout"].dump()));
  }
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    const auto& rs = j["rope_scaling"];
    std::string type = "?";
    if (rs.is_object()) {
      if (rs.contains("rope_type") && rs["rope_type"].is_string())
        type = rs["rope_type"].get<std::string>();
      else if (rs.contains("type") && rs["type"].is_string())
        type = rs["type"].get<std::string>();
    }
    if (type != "default") {
      throw ConfigError(
          where("rope_scaling"),
          fmt::format("rope scaling type '{}' is not implemented (only null or \"default\"): {}", type, rs.dump()));
    }
  }

  LlamaConfig c;
  c.vocab_size = get_int(j, "vocab_size");
  c.hidden_size = get_int(j, "hidden_size");
  c.intermediate_size = get_int(j, "intermediate_size");
  c.num_hidden_layers = get_int(j, "num_hidden_layers");
  c.num_attention_heads = get_int(j, "num_attention_heads");
  c.num_key_value_heads = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()
                              ? get_int(j, "num_key_value_heads")
                              : c.num_attention_heads;
  if (c.num_attention_heads <= 0) {
    throw ConfigError(where("num_attention_heads"), fmt::format("must be positive, got {}", c.num_attention_heads));
  }
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    c.head_dim = get_int(j, "head_dim");
  } else {
    if (c.hidden_size % c.num_attention_heads != 0) {
      throw ConfigError(where("hidden_size"), fmt::format("{} is not a multiple of num_attention_heads {} and "
                                                          "head_dim is not given",
                                                          c.hidden_size, c.num_attention_heads));
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (j.contains("rms_norm_eps")) c.rms_norm_eps = get_number(j, "rms_norm_eps");
  if (j.contains("rope_theta")) c.rope_theta = get_number(j, "rope_theta");
  if (j.contains("max_position_embeddings")) c.max_position_embeddings = get_int(j, "max_position_embeddings");
  // Hugging Face's LlamaConfig default is untied.
  c.tie_word_embeddings = j.contains("tie_word_embeddings") && get_bool(j, "tie_word_embeddings");
  try {
    c.validate();
  } catch (const ConfigError& e) {  // named as the file's key: llama.head_dim -> config.json:head_dim
    const std::string prefix = "llama.", message = e.what();
    const std::string key = e.key().rfind(prefix, 0) == 0 ? e.key().substr(prefix.size()) : e.key();
    const auto colon = message.find("': ");
    throw ConfigError(where(key), colon == std::string::npos ? message : message.substr(colon + 3));
  }
  return c;
}

LlamaConfig LlamaConfig::from_hf_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError("config.json", fmt::format("cannot read '{}'", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return from_hf_json(buffer.str());
}

}  // namespace longrec::model::llama
