#include "longrec/model/model_config.h"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <functional>
#include <regex>
#include <variant>

#include <fmt/ranges.h>

#include "longrec/core/config.h"
#include "longrec/core/error.h"
#include "longrec/model/backbone_names.h"

namespace longrec::model {

std::vector<std::string> registered_backbones() {
  return std::vector<std::string>(kBackboneNames.begin(), kBackboneNames.end());
}

namespace {

using json = nlohmann::json;

// A field of ModelConfig of type T: where it lives and how it is checked.
template <typename T>
struct Binding {
  T& (*ref)(ModelConfig&);
  check::Validator<T> validate;
};
using AnyBinding =
    std::variant<Binding<int>, Binding<double>, Binding<std::string>, Binding<bool>, Binding<std::uint64_t>>;

enum Role : unsigned {
  kArchitecture = 1,  // must match between a checkpoint and the config; part of the UserState signature
  kStored = 2,        // in manifests and bundles
  // Added after manifests existed: absent from older manifests and bundles
  // (read as the default) and left out of the serving signature at its
  // default, so that older checkpoints, bundles and saved user states load
  // unchanged.
  kAddedLater = 4,
};

struct Field {
  const char* section;
  const char* key;
  const char* help;
  unsigned roles;
  AnyBinding binding;
};

// Accessor of a member (nested members too), as a plain function pointer.
#define LONGREC_MEMBER(member) +[](ModelConfig& c) -> decltype((c.member)) { return c.member; }

// The one list of model fields, in the order --help and the resolved table show them.
// Upper bounds are far above any model this trainer runs and refuse values
// that cannot work before anything is allocated (an int32 overflow of a
// shape, a 22 GB bias table); what a whole step needs is estimated against
// the machine's memory by step_memory.h. HSTU buckets time gaps by doubling,
// so at most ~146 buckets are ever reached (gaps up to 2^63).
const std::vector<Field>& fields() {
  static const std::vector<Field> table = {
      {"model", "size", "size descriptor, e.g. hstu-d64-l8-h2 (sets backbone, dim, blocks, heads)", 0,
       Binding<std::string>{LONGREC_MEMBER(size), {}}},
      {"model", "backbone", "registered backbone (hstu | sasrec | hllm)", kArchitecture | kStored,
       Binding<std::string>{LONGREC_MEMBER(backbone), check::one_of(registered_backbones())}},
      {"model", "dim", "embedding and residual width D", kArchitecture | kStored,
       Binding<int>{LONGREC_MEMBER(dim), check::in_range(1, 65536)}},
      {"model", "blocks", "number of blocks", kArchitecture | kStored,
       Binding<int>{LONGREC_MEMBER(blocks), check::in_range(1, 1024)}},
      {"model", "heads", "attention heads", kArchitecture | kStored,
       Binding<int>{LONGREC_MEMBER(heads), check::in_range(1, 1024)}},
      {"model", "head_dim", "per-head q/k/v width (0 = dim / heads)", kArchitecture | kStored,
       Binding<int>{LONGREC_MEMBER(head_dim), check::in_range(0, 65536)}},
      {"model", "max_len", "maximum sequence length N_max (HSTU normaliser, position tables)", kArchitecture | kStored,
       Binding<int>{LONGREC_MEMBER(max_len), check::in_range(1, 1 << 20)}},
      {"model", "attention_divisor",
       "HSTU: divide attention by this instead of model.max_len (0 = max_len; the HSTU reference divides by its "
       "padded length, 211 on ML-1M)",
       kArchitecture | kStored | kAddedLater,
       Binding<int>{LONGREC_MEMBER(attention_divisor), check::in_range(0, 1 << 20)}},
      {"model", "dropout", "dropout on inputs and block outputs", kStored,
       Binding<double>{LONGREC_MEMBER(dropout), check::in_range(0.0, 0.99)}},
      {"model", "attn_dropout", "dropout on attention weights", kStored,
       Binding<double>{LONGREC_MEMBER(attn_dropout), check::in_range(0.0, 0.99)}},
      {"model", "ffn_dim", "SASRec FFN width (0 = dim); HLLM MLP width (0 = 4 dim)", kArchitecture | kStored,
       Binding<int>{LONGREC_MEMBER(ffn_dim), check::in_range(0, 1 << 18)}},
      {"model", "time_buckets", "HSTU log-time buckets", kArchitecture | kStored,
       Binding<int>{LONGREC_MEMBER(time_buckets), check::in_range(1, 4096)}},
      {"model", "temperature", "softmax temperature of cosine logits", kStored,
       Binding<double>{LONGREC_MEMBER(temperature), check::in_range(1e-4, 100.0)}},
      {"model", "num_negatives", "uniform negatives per position (or per batch when shared)", kStored,
       Binding<int>{LONGREC_MEMBER(num_negatives), check::in_range(0, 1 << 20)}},
      {"model", "negatives", "per_position | shared", kStored,
       Binding<std::string>{LONGREC_MEMBER(negatives), check::one_of({"per_position", "shared"})}},
      {"model", "in_batch_negatives", "also use the batch's other targets as negatives", kStored,
       Binding<bool>{LONGREC_MEMBER(in_batch_negatives), {}}},
      {"model", "seed", "seed of initialisation, dropout and negative sampling", kStored,
       Binding<std::uint64_t>{LONGREC_MEMBER(seed), {}}},
      {"personalization", "segment_len", "events per segment S (0 = personalization tokens off)",
       kArchitecture | kStored, Binding<int>{LONGREC_MEMBER(personalization.segment_len), check::in_range(0, 1 << 20)}},
      {"personalization", "tokens_per_group", "tokens K after each segment", kArchitecture | kStored,
       Binding<int>{LONGREC_MEMBER(personalization.tokens_per_group), check::in_range(1, kMaxGroupTokens)}},
      {"personalization", "recent_window", "newest events R kept raw", kArchitecture | kStored,
       Binding<int>{LONGREC_MEMBER(personalization.recent_window), check::in_range(0, 1 << 20)}},
      {"personalization", "max_groups", "cap on token groups (oldest dropped when serving)", kArchitecture | kStored,
       Binding<int>{LONGREC_MEMBER(personalization.max_groups), check::in_range(1, 1 << 16)}},
      {"personalization", "groups",
       "explicit groups offset:K,... (offset = history events up to the group's end); overrides segment_len",
       kArchitecture | kStored, Binding<std::string>{LONGREC_MEMBER(personalization.groups), {}}},
      // The two paths compute the same function of the same weights: not architecture.
      {"personalization", "path", "block (linear cost) | dense (masked reference)", kStored,
       Binding<std::string>{LONGREC_MEMBER(personalization.path), check::one_of({"block", "dense"})}},
      // HLLM (model.backbone = hllm): the user LLM's attention, the item LLM, item texts, the loss.
      {"hllm", "kv_heads", "user LLM key/value heads (0 = model.heads)", kArchitecture | kStored,
       Binding<int>{LONGREC_MEMBER(hllm.kv_heads), check::in_range(0, 1024)}},
      {"hllm", "rope_theta", "rotary embedding base of both LLMs", kArchitecture | kStored,
       Binding<double>{LONGREC_MEMBER(hllm.rope_theta), check::in_range(1.0, 1e9)}},
      {"hllm", "rms_norm_eps", "RMSNorm epsilon of both LLMs", kArchitecture | kStored,
       Binding<double>{LONGREC_MEMBER(hllm.rms_norm_eps), check::in_range(1e-12, 1e-2)}},
      {"hllm", "item_blocks", "item LLM layers (0 = model.blocks)", kArchitecture | kStored,
       Binding<int>{LONGREC_MEMBER(hllm.item_blocks), check::in_range(0, 1024)}},
      {"hllm", "item_heads", "item LLM attention heads (0 = model.heads)", kArchitecture | kStored,
       Binding<int>{LONGREC_MEMBER(hllm.item_heads), check::in_range(0, 1024)}},
      {"hllm", "item_kv_heads", "item LLM key/value heads (0 = hllm.item_heads)", kArchitecture | kStored,
       Binding<int>{LONGREC_MEMBER(hllm.item_kv_heads), check::in_range(0, 1024)}},
      {"hllm", "item_ffn_dim", "item LLM MLP width (0 = the user LLM's)", kArchitecture | kStored,
       Binding<int>{LONGREC_MEMBER(hllm.item_ffn_dim), check::in_range(0, 1 << 18)}},
      {"hllm", "vocab_size", "item LLM vocabulary (0 = the tokenizer's, set when training starts)",
       kArchitecture | kStored, Binding<int>{LONGREC_MEMBER(hllm.vocab_size), check::in_range(0, 1 << 22)}},
      {"hllm", "tokenizer",
       "SentencePiece model of the item texts (longrec tokenizer train, or a Llama tokenizer.model)", kStored,
       Binding<std::string>{LONGREC_MEMBER(hllm.tokenizer), {}}},
      {"hllm", "tokenizer_checksum", "checksum of the tokenizer the model was trained with (set by training)",
       kArchitecture | kStored, Binding<std::string>{LONGREC_MEMBER(hllm.tokenizer_checksum), {}}},
      {"hllm", "item_pretrained", "Hugging Face Llama directory the item LLM starts from (empty: from scratch)",
       kStored, Binding<std::string>{LONGREC_MEMBER(hllm.item_pretrained), {}}},
      {"hllm", "prompt", "text put before every item's text", kArchitecture | kStored,
       Binding<std::string>{LONGREC_MEMBER(hllm.prompt), {}}},
      {"hllm", "max_text_len", "item text tokens kept (BOS, prompt and text; [ITEM] after them)",
       kArchitecture | kStored, Binding<int>{LONGREC_MEMBER(hllm.max_text_len), check::in_range(1, 1 << 14)}},
      {"hllm", "bos", "start each item text with the tokenizer's BOS (when it has one)", kArchitecture | kStored,
       Binding<bool>{LONGREC_MEMBER(hllm.bos), {}}},
      {"hllm", "pooling", "item vector: item_token (the learned [ITEM] token's last state) | mean",
       kArchitecture | kStored,
       Binding<std::string>{LONGREC_MEMBER(hllm.pooling), check::one_of({"item_token", "mean"})}},
      {"hllm", "logit_scale", "learned (from ln(1 / init_temperature), clamped) | fixed (1 / model.temperature)",
       kArchitecture | kStored,
       Binding<std::string>{LONGREC_MEMBER(hllm.logit_scale), check::one_of({"learned", "fixed"})}},
      {"hllm", "init_temperature", "initial temperature of the learned logit scale", kStored,
       Binding<double>{LONGREC_MEMBER(hllm.init_temperature), check::in_range(1e-4, 10.0)}},
      {"hllm", "max_logit_scale", "the learned logit scale is clamped to [1, this]", kStored,
       Binding<double>{LONGREC_MEMBER(hllm.max_logit_scale), check::in_range(1.0, 1e4)}},
      {"hllm", "nce_threshold", "negatives whose cosine with the positive exceeds this are masked", kStored,
       Binding<double>{LONGREC_MEMBER(hllm.nce_threshold), check::in_range(-1.0, 1.0)}},
      {"hllm", "encode_chunk", "items per item-LLM forward when encoding the catalogue", 0,
       Binding<int>{LONGREC_MEMBER(hllm.encode_chunk), check::in_range(1, 1 << 20)}},
  };
  return table;
}
#undef LONGREC_MEMBER

std::string full_key(const Field& f) { return std::string(f.section) + "." + f.key; }

// [hllm] fields shape only an hllm model: other backbones leave them out of
// architecture comparisons and serving signatures (which stay as before).
bool applies_to(const Field& f, const ModelConfig& config) {
  return std::string(f.section) != "hllm" || config.backbone == "hllm";
}

const Field& field_of(const std::string& key) {
  for (const auto& f : fields()) {
    if (full_key(f) == key) return f;
  }
  throw ConfigError(key, "not a model configuration key");
}

template <typename T>
const char* type_name() {
  if constexpr (std::is_same_v<T, int>) return "int";
  if constexpr (std::is_same_v<T, double>) return "double";
  if constexpr (std::is_same_v<T, std::string>) return "string";
  if constexpr (std::is_same_v<T, bool>) return "bool";
  if constexpr (std::is_same_v<T, std::uint64_t>) return "uint64";
}

template <typename T>
T& value_of(const Binding<T>& binding, const ModelConfig& config) {
  // The accessors only name members; reading through them does not modify.
  return binding.ref(const_cast<ModelConfig&>(config));
}

template <typename T>
T parse_text(const std::string& key, const std::string& text) {
  if constexpr (std::is_same_v<T, std::string>) {
    return text;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (text == "true" || text == "1") return true;
    if (text == "false" || text == "0") return false;
    throw ConfigError(key, fmt::format("'{}' is not a boolean (true | false)", text));
  } else if constexpr (std::is_same_v<T, double>) {
    try {
      std::size_t used = 0;
      const double v = std::stod(text, &used);
      if (used == text.size()) return v;
    } catch (const std::exception&) {
    }
    throw ConfigError(key, fmt::format("'{}' is not a number", text));
  } else {
    T v{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
      throw ConfigError(key, fmt::format("'{}' is not an integer of type {}", text, type_name<T>()));
    }
    return v;
  }
}

}  // namespace

ModelConfig ModelConfig::resolved() const {
  ModelConfig out = *this;
  out.head_dim = resolved_head_dim();
  out.ffn_dim = resolved_ffn_dim();
  // 0 and max_len divide alike; 0 is how configurations before the key read.
  if (out.attention_divisor == out.max_len) out.attention_divisor = 0;
  return out;
}

std::string ModelConfig::describe() const {
  auto name = fmt::format("{}-d{}-l{}-h{}", backbone, dim, blocks, heads);
  if (personalization.enabled()) name += fmt::format("-pt{}", personalization.total_tokens());
  return name;
}

const std::vector<ModelField>& model_fields() {
  static const std::vector<ModelField> out = [] {
    std::vector<ModelField> list;
    for (const auto& f : fields()) {
      const auto type = std::visit(
          [](const auto& b) {
            return std::string(type_name<std::decay_t<decltype(b.ref(std::declval<ModelConfig&>()))>>());
          },
          f.binding);
      list.push_back({full_key(f), type, (f.roles & kArchitecture) != 0, (f.roles & kStored) != 0});
    }
    return list;
  }();
  return out;
}

std::string model_field_value(const ModelConfig& config, const std::string& key) {
  return std::visit([&](const auto& b) { return config_detail::format_value(value_of(b, config)); },
                    field_of(key).binding);
}

void set_model_field(ModelConfig& config, const std::string& key, const std::string& value) {
  std::visit(
      [&](const auto& b) {
        auto& target = b.ref(config);
        target = parse_text<std::decay_t<decltype(target)>>(key, value);
      },
      field_of(key).binding);
}

void apply_size_descriptor(ModelConfig& c, const std::string& descriptor) {
  static const std::regex pattern(R"(^([a-z][a-z0-9_]*)((?:-[dlh]\d{1,9})*)$)");
  std::smatch match;
  const auto backbones = registered_backbones();
  const bool parsed = std::regex_match(descriptor, match, pattern);
  if (!parsed || std::find(backbones.begin(), backbones.end(), match[1].str()) == backbones.end()) {
    throw ConfigError("model.size", fmt::format("'{}' is not a size descriptor; expected e.g. hstu-d64-l8-h2 "
                                                "(backbone {}, then -d<width> -l<blocks> -h<heads>)",
                                                descriptor, fmt::join(backbones, "|")));
  }
  c.backbone = match[1];
  static const std::regex part(R"(-([dlh])(\d+))");
  const std::string rest = match[2];
  for (auto it = std::sregex_iterator(rest.begin(), rest.end(), part); it != std::sregex_iterator(); ++it) {
    const int value = std::stoi((*it)[2]);
    switch ((*it)[1].str()[0]) {
      case 'd':
        c.dim = value;
        break;
      case 'l':
        c.blocks = value;
        break;
      case 'h':
        c.heads = value;
        break;
    }
  }
}

namespace {

void validate_hllm_config(const ModelConfig& c) {
  const auto& h = c.hllm;
  const int head_dim = c.resolved_head_dim();
  if (head_dim % 2 != 0) {
    throw ConfigError("model.head_dim",
                      fmt::format("hllm's rotary embeddings need an even head width, got {}", head_dim));
  }
  const int kv = h.kv_heads > 0 ? h.kv_heads : c.heads;
  if (c.heads % kv != 0) {
    throw ConfigError("hllm.kv_heads", fmt::format("{} does not divide model.heads = {}", kv, c.heads));
  }
  const int item_heads = h.item_heads > 0 ? h.item_heads : c.heads;
  if (c.dim % item_heads != 0 || (c.dim / item_heads) % 2 != 0) {
    throw ConfigError("hllm.item_heads",
                      fmt::format("{} heads must divide model.dim = {} into an even head width", item_heads, c.dim));
  }
  const int item_kv = h.item_kv_heads > 0 ? h.item_kv_heads : item_heads;
  if (item_heads % item_kv != 0) {
    throw ConfigError("hllm.item_kv_heads",
                      fmt::format("{} does not divide the item LLM's {} heads", item_kv, item_heads));
  }
}

}  // namespace

void validate_model_config(const ModelConfig& c) {
  // Every field's own check (ranges, bounds, finite numbers): configurations
  // from a size descriptor, a manifest or code pass through here too.
  for (const auto& f : fields()) {
    std::visit(
        [&](const auto& b) {
          if (b.validate) b.validate(full_key(f), value_of(b, c));
          using T = std::decay_t<decltype(value_of(b, c))>;
          if constexpr (std::is_floating_point_v<T>) {
            if (!std::isfinite(value_of(b, c))) {
              throw ConfigError(full_key(f), fmt::format("got {}, expected a finite number", value_of(b, c)));
            }
          }
        },
        f.binding);
  }
  const auto backbones = registered_backbones();
  if (std::find(backbones.begin(), backbones.end(), c.backbone) == backbones.end()) {
    throw ConfigError("model.backbone", fmt::format("got '{}', expected one of the registered backbones: {}",
                                                    c.backbone, fmt::join(backbones, ", ")));
  }
  if (c.dim < 1) throw ConfigError("model.dim", fmt::format("got {}, expected >= 1", c.dim));
  if (c.blocks < 1) throw ConfigError("model.blocks", fmt::format("got {}, expected >= 1", c.blocks));
  if (c.heads < 1) throw ConfigError("model.heads", fmt::format("got {}, expected >= 1", c.heads));
  if (c.head_dim == 0 && c.dim % c.heads != 0) {
    throw ConfigError("model.heads", fmt::format("{} heads do not divide model.dim = {}; change one of them or set "
                                                 "model.head_dim",
                                                 c.heads, c.dim));
  }
  if (c.max_len < 1) throw ConfigError("model.max_len", fmt::format("got {}, expected >= 1", c.max_len));
  if (c.dropout < 0 || c.dropout >= 1) {
    throw ConfigError("model.dropout", fmt::format("got {}, expected a value in [0, 1)", c.dropout));
  }
  if (c.temperature <= 0) throw ConfigError("model.temperature", fmt::format("got {}, expected > 0", c.temperature));
  if (c.num_negatives < 1 && !c.in_batch_negatives) {
    throw ConfigError("model.num_negatives", "expected >= 1 (or model.in_batch_negatives = true)");
  }
  if (c.negatives != "per_position" && c.negatives != "shared") {
    throw ConfigError("model.negatives", fmt::format("got '{}', expected per_position or shared", c.negatives));
  }
  if (c.attention_divisor != 0 && c.backbone != "hstu") {
    throw ConfigError(
        "model.attention_divisor",
        fmt::format("got {}: only the hstu backbone divides attention by a length (model.backbone is {}); "
                    "leave it 0",
                    c.attention_divisor, c.backbone));
  }
  validate_personalization_config(c.personalization, c.max_len);
  if (c.backbone == "hllm") validate_hllm_config(c);
}

void register_model_options(OptionRegistry& r, ModelConfig& c) {
  for (const auto& f : fields()) {
    std::visit(
        [&](const auto& b) {
          auto* target = &b.ref(c);
          if constexpr (std::is_same_v<std::decay_t<decltype(*target)>, bool>) {
            r.flag(f.section, f.key, target, f.help);
          } else {
            r.add(f.section, f.key, target, f.help, b.validate);
          }
        },
        f.binding);
  }
  r.constraint([&r, &c] {
    if (!c.size.empty()) {
      // A descriptor and an explicit key that disagree: one of them would be
      // dropped silently, so neither wins. Keys the descriptor leaves alone,
      // or sets to the value given, are fine (a resolved config.ini has both).
      ModelConfig sized = c;
      apply_size_descriptor(sized, c.size);
      const std::vector<std::pair<std::string, bool>> named = {{"model.backbone", sized.backbone != c.backbone},
                                                               {"model.dim", sized.dim != c.dim},
                                                               {"model.blocks", sized.blocks != c.blocks},
                                                               {"model.heads", sized.heads != c.heads}};
      for (const auto& [key, differs] : named) {
        if (!differs) continue;
        if (r.given(key)) {
          throw ConfigError("model.size", fmt::format("'{}' sets {} = {}, but {} = {} is given ({}); give either "
                                                      "the size descriptor or the key, not both",
                                                      c.size, key, model_field_value(sized, key), key,
                                                      model_field_value(c, key), r.source_of(key)));
        }
        r.set_source(key, "model.size");
      }
      c = sized;
    }
    validate_model_config(c);
  });
}

std::string model_config_to_json(const ModelConfig& config) {
  json out = json::object();
  for (const auto& f : fields()) {
    if ((f.roles & kStored) == 0) continue;
    // [model] keys at the top level, other sections as nested objects (the manifest layout since version 1).
    auto& scope = std::string(f.section) == "model" ? out : out[f.section];
    std::visit([&](const auto& b) { scope[f.key] = value_of(b, config); }, f.binding);
  }
  return out.dump();
}

ModelConfig model_config_from_json(const std::string& text) {
  json in;
  try {
    in = json::parse(text);
  } catch (const json::exception& e) {
    throw DataError(fmt::format("malformed model configuration ({})", e.what()));
  }
  if (!in.is_object()) throw DataError("malformed model configuration (not a JSON object)");
  ModelConfig config;
  for (const auto& f : fields()) {
    if ((f.roles & kStored) == 0) continue;
    const bool top = std::string(f.section) == "model";
    const json* scope = top ? &in : (in.contains(f.section) ? &in.at(f.section) : nullptr);
    if (scope == nullptr || !scope->is_object() || !scope->contains(f.key)) {
      if (!top || (f.roles & kAddedLater) != 0) continue;  // written before this section or key existed: the default
      throw DataError(fmt::format("model configuration has no '{}'", full_key(f)));
    }
    std::visit(
        [&](const auto& b) {
          auto& target = b.ref(config);
          try {
            target = scope->at(f.key).template get<std::decay_t<decltype(target)>>();
          } catch (const json::exception& e) {
            throw DataError(fmt::format("model configuration '{}': expected a value of type {} ({})", full_key(f),
                                        type_name<std::decay_t<decltype(target)>>(), e.what()));
          }
        },
        f.binding);
  }
  return config;
}

void check_same_architecture(const ModelConfig& saved, const ModelConfig& config, const std::string& what) {
  const auto a = saved.resolved(), b = config.resolved();
  for (const auto& f : fields()) {
    if ((f.roles & kArchitecture) == 0 || !applies_to(f, a) || !applies_to(f, b)) continue;
    const auto key = full_key(f);
    const auto before = model_field_value(a, key), now = model_field_value(b, key);
    if (before != now) {
      throw ConfigError(key,
                        fmt::format("{} was trained with {} = {}, this configuration has {}", what, key, before, now));
    }
  }
}

std::string architecture_signature(const ModelConfig& config) {
  const auto resolved = config.resolved();
  std::vector<std::string> parts;
  const ModelConfig defaults;
  for (const auto& f : fields()) {
    const auto key = full_key(f);
    // A key added later, at its default, leaves the signature as it was before the key.
    if ((f.roles & kAddedLater) != 0 && model_field_value(resolved, key) == model_field_value(defaults, key)) continue;
    if ((f.roles & kArchitecture) != 0 && applies_to(f, resolved)) {
      parts.push_back(full_key(f) + "=" + model_field_value(resolved, full_key(f)));
    }
  }
  return fmt::format("{}", fmt::join(parts, " "));
}

}  // namespace longrec::model
