#include "longrec/model/model_config.h"

#include <regex>

#include "longrec/core/config.h"
#include "longrec/core/error.h"

namespace longrec::model {

std::string ModelConfig::describe() const {
  auto name = fmt::format("{}-d{}-l{}-h{}", backbone, dim, blocks, heads);
  if (personalization.enabled()) name += fmt::format("-pt{}", personalization.total_tokens());
  return name;
}

void apply_size_descriptor(ModelConfig& c, const std::string& descriptor) {
  static const std::regex pattern(R"(^(hstu|sasrec)((?:-[dlh]\d+)*)$)");
  std::smatch match;
  if (!std::regex_match(descriptor, match, pattern)) {
    throw ConfigError("model.size", fmt::format("'{}' is not a size descriptor; expected e.g. hstu-d64-l8-h2 "
                                                "(backbone hstu|sasrec, then -d<width> -l<blocks> -h<heads>)",
                                                descriptor));
  }
  c.backbone = match[1];
  static const std::regex part(R"(-([dlh])(\d+))");
  const std::string rest = match[2];
  for (auto it = std::sregex_iterator(rest.begin(), rest.end(), part); it != std::sregex_iterator(); ++it) {
    const int value = std::stoi((*it)[2]);
    switch ((*it)[1].str()[0]) {
      case 'd': c.dim = value; break;
      case 'l': c.blocks = value; break;
      case 'h': c.heads = value; break;
    }
  }
}

void validate_model_config(const ModelConfig& c) {
  if (c.backbone != "hstu" && c.backbone != "sasrec") {
    throw ConfigError("model.backbone", fmt::format("got '{}', expected hstu or sasrec", c.backbone));
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
  validate_personalization_config(c.personalization, c.max_len);
}

void register_model_options(OptionRegistry& r, ModelConfig& c) {
  r.add("model", "size", &c.size, "size descriptor, e.g. hstu-d64-l8-h2 (sets backbone, dim, blocks, heads)");
  r.add("model", "backbone", &c.backbone, "hstu | sasrec", check::one_of({"hstu", "sasrec"}));
  r.add("model", "dim", &c.dim, "embedding and residual width D", check::at_least(1));
  r.add("model", "blocks", &c.blocks, "number of blocks", check::at_least(1));
  r.add("model", "heads", &c.heads, "attention heads", check::at_least(1));
  r.add("model", "head_dim", &c.head_dim, "per-head q/k/v width (0 = dim / heads)", check::at_least(0));
  r.add("model", "max_len", &c.max_len, "maximum sequence length N_max (HSTU normaliser, position tables)",
        check::at_least(1));
  r.add("model", "dropout", &c.dropout, "dropout on inputs and block outputs", check::in_range(0.0, 0.99));
  r.add("model", "attn_dropout", &c.attn_dropout, "dropout on attention weights", check::in_range(0.0, 0.99));
  r.add("model", "ffn_dim", &c.ffn_dim, "SASRec FFN width (0 = dim)", check::at_least(0));
  r.add("model", "time_buckets", &c.time_buckets, "HSTU log-time buckets", check::at_least(1));
  r.add("model", "temperature", &c.temperature, "softmax temperature of cosine logits", check::in_range(1e-4, 100.0));
  r.add("model", "num_negatives", &c.num_negatives, "uniform negatives per position (or per batch when shared)",
        check::at_least(0));
  r.add("model", "negatives", &c.negatives, "per_position | shared", check::one_of({"per_position", "shared"}));
  r.flag("model", "in_batch_negatives", &c.in_batch_negatives, "also use the batch's other targets as negatives");
  r.add("model", "seed", &c.seed, "seed of initialisation, dropout and negative sampling");
  register_personalization_options(r, c.personalization);
  r.constraint([&c] {
    if (!c.size.empty()) apply_size_descriptor(c, c.size);
    validate_model_config(c);
  });
}

}  // namespace longrec::model
