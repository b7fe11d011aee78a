// The ModelConfig field table: every stored field round-trips through the
// JSON of manifests and bundles, an architecture field changed between a
// checkpoint and a config is refused with its name, and the backbone registry
// is what validation and the factory accept.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <functional>

#include "longrec/core/config.h"
#include "longrec/core/error.h"
#include "longrec/model/backbone.h"
#include "longrec/model/model_config.h"

namespace longrec::model {

namespace {

// A value of the field's type that differs from `current` (not necessarily valid: JSON does not validate).
std::string another_value(const ModelField& field, const std::string& current) {
  if (field.type == "bool") return current == "true" ? "false" : "true";
  if (field.type == "string") return current + "-changed";
  if (field.type == "double") return current == "0.375" ? "0.625" : "0.375";
  return std::to_string(std::stoll(current) + 7);  // int, uint64
}

}  // namespace

TEST(ModelConfigTable, ListsEveryKeyOnceAndDrivesTheOptions) {
  const auto& fields = model_fields();
  std::vector<std::string> keys;
  for (const auto& f : fields) keys.push_back(f.key);
  auto sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end()) << "a key is listed twice";
  // The keys the CLI registers are the table's, in its order.
  ModelConfig config;
  OptionRegistry registry("train", "test", "train");
  register_model_options(registry, config);
  std::vector<std::string> registered;
  for (const auto& row : registry.resolved()) registered.push_back(row.key);
  EXPECT_EQ(registered, keys);
  EXPECT_EQ(fields.size(), 43u);
}

TEST(ModelConfigTable, EveryStoredFieldRoundTripsThroughJson) {
  for (const auto& field : model_fields()) {
    if (!field.stored) continue;
    ModelConfig config;
    const auto changed = another_value(field, model_field_value(config, field.key));
    set_model_field(config, field.key, changed);
    ASSERT_EQ(model_field_value(config, field.key), changed) << field.key;
    const auto back = model_config_from_json(model_config_to_json(config));
    EXPECT_EQ(model_field_value(back, field.key), changed) << field.key;
    // Every other field keeps its value.
    for (const auto& other : model_fields()) {
      if (other.stored)
        EXPECT_EQ(model_field_value(back, other.key), model_field_value(config, other.key)) << other.key;
    }
  }
}

TEST(ModelConfigTable, JsonKeepsTheManifestLayout) {
  ModelConfig config;
  config.personalization.segment_len = 64;
  const auto json = nlohmann::json::parse(model_config_to_json(config));
  EXPECT_EQ(json.at("dim"), 50);
  EXPECT_EQ(json.at("seed"), 1u);
  EXPECT_EQ(json.at("personalization").at("segment_len"), 64);
  EXPECT_FALSE(json.contains("size"));  // a descriptor, applied before storing
  // Manifests written before personalization tokens have no such section: defaults.
  auto old = json;
  old.erase("personalization");
  EXPECT_FALSE(model_config_from_json(old.dump()).personalization.enabled());
}

TEST(ModelConfigTable, JsonRefusesMissingAndIllTypedKeysByName) {
  const auto json = nlohmann::json::parse(model_config_to_json(ModelConfig{}));
  auto missing = json;
  missing.erase("blocks");
  try {
    model_config_from_json(missing.dump());
    FAIL() << "a missing key was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("model.blocks"), std::string::npos) << e.what();
  }
  auto wrong = json;
  wrong["dim"] = "wide";
  try {
    model_config_from_json(wrong.dump());
    FAIL() << "an ill-typed value was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("model.dim"), std::string::npos) << e.what();
  }
  EXPECT_THROW(model_config_from_json("{not json"), DataError);
}

TEST(ModelConfigTable, AChangedArchitectureFieldIsRefusedWithItsName) {
  int architecture = 0;
  for (const auto& field : model_fields()) {
    ModelConfig saved, config;
    const bool hllm_field = field.key.rfind("hllm.", 0) == 0;
    if (hllm_field) saved.backbone = config.backbone = "hllm";
    set_model_field(config, field.key, another_value(field, model_field_value(config, field.key)));
    if (hllm_field && field.architecture) {
      // Other backbones ignore [hllm]: no refusal, the same serving signature as before.
      ModelConfig hstu_saved, hstu;
      set_model_field(hstu, field.key, model_field_value(config, field.key));
      EXPECT_NO_THROW(check_same_architecture(hstu_saved, hstu, "x")) << field.key;
      EXPECT_EQ(architecture_signature(hstu_saved), architecture_signature(hstu)) << field.key;
    }
    if (!field.architecture) {
      EXPECT_NO_THROW(check_same_architecture(saved, config, "ckpt/step-1")) << field.key;
      continue;
    }
    ++architecture;
    try {
      check_same_architecture(saved, config, "ckpt/step-1");
      ADD_FAILURE() << field.key << " changed but was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(field.key), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("ckpt/step-1 was trained with"), std::string::npos) << e.what();
    }
    // The serving state's signature tells the two apart too.
    EXPECT_NE(architecture_signature(saved), architecture_signature(config)) << field.key;
  }
  EXPECT_EQ(architecture, 28);
  // Derived defaults compare by their resolved value: head_dim 0 means dim / heads.
  ModelConfig implicit, explicit_width;
  explicit_width.head_dim = implicit.dim / implicit.heads;
  explicit_width.ffn_dim = implicit.dim;
  EXPECT_NO_THROW(check_same_architecture(implicit, explicit_width, "x"));
  EXPECT_EQ(architecture_signature(implicit), architecture_signature(explicit_width));
}

// model.attention_divisor came after checkpoints existed: a manifest or bundle
// without it loads as before (0: divide by max_len), the serving signature at
// the default is the one written before the key, and max_len given
// explicitly is the same model as 0.
TEST(ModelConfigTable, AttentionDivisorKeepsOlderCheckpointsLoading) {
  const ModelConfig defaults;
  auto json = nlohmann::json::parse(model_config_to_json(defaults));
  EXPECT_EQ(json.at("attention_divisor"), 0);
  json.erase("attention_divisor");
  const auto old = model_config_from_json(json.dump());
  EXPECT_EQ(old.attention_divisor, 0);
  EXPECT_EQ(old.resolved_attention_divisor(), 200);
  EXPECT_NO_THROW(check_same_architecture(old, defaults, "x"));
  EXPECT_EQ(architecture_signature(defaults).find("attention_divisor"), std::string::npos);
  ModelConfig as_max_len;
  as_max_len.attention_divisor = as_max_len.max_len;
  EXPECT_NO_THROW(check_same_architecture(defaults, as_max_len, "x"));
  EXPECT_EQ(architecture_signature(as_max_len), architecture_signature(defaults));
  ModelConfig reference;
  reference.attention_divisor = 211;
  EXPECT_EQ(reference.resolved_attention_divisor(), 211);
  EXPECT_NE(architecture_signature(reference).find("model.attention_divisor=211"), std::string::npos);
  try {
    check_same_architecture(defaults, reference, "ckpt/step-1");
    ADD_FAILURE() << "a changed divisor was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.attention_divisor = 0, this configuration has 211"), std::string::npos)
        << e.what();
  }
  // Only HSTU divides attention by a length; a negative or huge value is refused by name.
  ModelConfig sasrec;
  sasrec.backbone = "sasrec";
  sasrec.attention_divisor = 211;
  try {
    validate_model_config(sasrec);
    ADD_FAILURE() << "sasrec with a divisor was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.attention_divisor"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("211"), std::string::npos) << e.what();
  }
  for (const int bad : {-1, (1 << 20) + 1}) {
    ModelConfig c;
    c.attention_divisor = bad;
    EXPECT_THROW(validate_model_config(c), ConfigError) << bad;
  }
}

TEST(BackboneRegistry, BuildsEveryRegisteredBackboneAndNamesThemOnRefusal) {
  const auto names = registered_backbones();
  EXPECT_EQ(names, (std::vector<std::string>{"hstu", "sasrec", "hllm"}));
  for (const auto& name : names) {
    ModelConfig config;
    config.backbone = name;
    EXPECT_NE(make_backbone(config), nullptr) << name;
    EXPECT_NO_THROW(validate_model_config(config)) << name;
    apply_size_descriptor(config, name + "-d32-l3-h4");
    EXPECT_EQ(config.backbone, name);
    EXPECT_EQ(config.dim, 32);
    EXPECT_EQ(config.blocks, 3);
    EXPECT_EQ(config.heads, 4);
  }
  ModelConfig unknown;
  unknown.backbone = "gpt";
  const std::vector<std::function<void()>> checks = {[&] { make_backbone(unknown); },
                                                     [&] { validate_model_config(unknown); }};
  for (const auto& check : checks) {
    try {
      check();
      ADD_FAILURE() << "an unknown backbone was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("hstu, sasrec, hllm"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(apply_size_descriptor(unknown, "gpt-d64"), ConfigError);
}

}  // namespace longrec::model
