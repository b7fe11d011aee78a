// The step-memory estimate refuses configurations whose keys are each within
// bounds but whose step cannot fit (logits, attention, bias tables, the item
// table), naming the keys that drive the largest term; the model's own
// validation refuses out-of-bound and non-finite fields however they were set.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "longrec/core/error.h"
#include "longrec/model/model_config.h"
#include "longrec/model/step_memory.h"

namespace longrec::model {

namespace {

constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

StepShape default_shape(std::int64_t num_items = 0) {
  StepShape shape;
  shape.batch_size = 128;
  shape.window = 200;
  shape.num_items = num_items;
  return shape;
}

// The refusal of `config` on a 32 GiB machine; empty key when it fits.
struct Refusal {
  std::string key, message;
};
Refusal refusal_of(const ModelConfig& config, const StepShape& shape = default_shape()) {
  try {
    check_step_memory(estimate_step_memory(config, shape), 32 * kGiB, "this machine");
  } catch (const ConfigError& e) {
    return {e.key(), e.what()};
  }
  return {};
}

}  // namespace

TEST(StepMemory, DefaultModelIsSmallAndFits) {
  const auto estimate = estimate_step_memory(ModelConfig{}, default_shape(3706));
  EXPECT_GT(estimate.total_bytes(), 1e6);
  EXPECT_LT(estimate.total_bytes(), 2.0 * kGiB) << estimate.describe(10);
  EXPECT_EQ(refusal_of(ModelConfig{}).key, "");
  // Terms come largest first.
  for (std::size_t i = 1; i < estimate.terms.size(); ++i) {
    EXPECT_GE(estimate.terms[i - 1].bytes, estimate.terms[i].bytes);
  }
}

TEST(StepMemory, BillionNegativesAreRefusedNamingTheLogitKeys) {
  ModelConfig config;
  config.num_negatives = 1'000'000'000;  // past the key's bound: set in code, not parsed
  const auto r = refusal_of(config);
  EXPECT_EQ(r.key, "model.num_negatives") << r.message;
  for (const std::string part :
       {"sampled-softmax logits", "model.num_negatives=1000000000", "data.batch_size=128", "data.max_len=200",
        "but this machine has 32.0 GiB", "lower model.num_negatives or data.batch_size or data.max_len"}) {
    EXPECT_NE(r.message.find(part), std::string::npos) << part << " in: " << r.message;
  }
  // Within the key's bound, the product still cannot fit.
  config.num_negatives = 100'000;
  EXPECT_EQ(refusal_of(config).key, "model.num_negatives");
  // Shared negatives are one pool per batch: the same count costs the same logits, no per-position ids.
  config.negatives = "shared";
  EXPECT_LT(estimate_step_memory(config, default_shape()).total_bytes(), estimate_step_memory(
                                                                             [&] {
                                                                               auto per_position = config;
                                                                               per_position.negatives = "per_position";
                                                                               return per_position;
                                                                             }(),
                                                                             default_shape())
                                                                             .total_bytes());
}

TEST(StepMemory, BillionTimeBucketsAreRefusedNamingTheKey) {
  ModelConfig config;
  config.time_buckets = 1'000'000'000;
  const auto r = refusal_of(config);
  EXPECT_EQ(r.key, "model.time_buckets") << r.message;
  EXPECT_NE(r.message.find("time-bucket biases"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("model.time_buckets=1000000000 x model.blocks=2"), std::string::npos) << r.message;
  // SASRec has no time buckets.
  config.backbone = "sasrec";
  EXPECT_EQ(refusal_of(config).key, "");
}

TEST(StepMemory, LongWindowsAreRefusedByTheQuadraticAttention) {
  ModelConfig config;
  config.max_len = 100'000;
  auto shape = default_shape();
  shape.window = 100'000;
  const auto r = refusal_of(config, shape);
  EXPECT_EQ(r.key, "data.max_len") << r.message;
  EXPECT_NE(r.message.find("attention scores"), std::string::npos) << r.message;
  // The same window over many ranks: each holds its share of the rows.
  shape.window = 4096;
  config.max_len = 4096;
  shape.batch_size = 256;
  const double one = estimate_step_memory(config, shape).total_bytes();
  shape.world = 8;
  EXPECT_LT(estimate_step_memory(config, shape).total_bytes(), one / 4);
}

TEST(StepMemory, InBatchNegativesAndWideModelsAndHugeCataloguesNameTheirKeys) {
  ModelConfig in_batch;
  in_batch.in_batch_negatives = true;
  auto shape = default_shape();
  shape.batch_size = 4096;
  const auto r = refusal_of(in_batch, shape);
  EXPECT_EQ(r.key, "model.in_batch_negatives") << r.message;
  EXPECT_NE(r.message.find("lower data.batch_size or data.max_len, or change model.in_batch_negatives"),
            std::string::npos)
      << r.message;

  ModelConfig wide;
  wide.dim = 65536;
  wide.heads = 64;
  wide.blocks = 64;
  EXPECT_EQ(refusal_of(wide).key, "model.dim");

  ModelConfig items;
  const auto catalogue = refusal_of(items, default_shape(10'000'000'000));
  EXPECT_EQ(catalogue.key, "model.dim") << catalogue.message;
  EXPECT_NE(catalogue.message.find("item table"), std::string::npos) << catalogue.message;
  EXPECT_NE(catalogue.message.find("items in the dataset=10000000000"), std::string::npos) << catalogue.message;
}

TEST(StepMemory, MachineMemoryIsKnownAndZeroDisablesTheCheck) {
  EXPECT_GT(machine_memory_bytes(), 64u << 20);
  ModelConfig config;
  config.num_negatives = 1'000'000'000;
  EXPECT_NO_THROW(check_step_memory(estimate_step_memory(config, default_shape()), 0));
  EXPECT_EQ(format_bytes(1.5 * kGiB), "1.5 GiB");
  EXPECT_EQ(format_bytes(512), "512 B");
}

TEST(ModelConfigLimits, ValidationRefusesOutOfBoundAndNonFiniteFieldsByKey) {
  const auto key_of = [](const ModelConfig& c) -> std::string {
    try {
      validate_model_config(c);
    } catch (const ConfigError& e) {
      return e.key();
    }
    return "";
  };
  EXPECT_EQ(key_of(ModelConfig{}), "");
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  ModelConfig c;
  c.dropout = nan;
  EXPECT_EQ(key_of(c), "model.dropout");
  c = {};
  c.attn_dropout = nan;
  EXPECT_EQ(key_of(c), "model.attn_dropout");
  c = {};
  c.temperature = inf;
  EXPECT_EQ(key_of(c), "model.temperature");
  c = {};
  c.dim = 1'000'000;
  c.heads = 1;
  EXPECT_EQ(key_of(c), "model.dim");
  c = {};
  c.heads = 1'000'000;
  EXPECT_EQ(key_of(c), "model.heads");
  c = {};
  c.max_len = 1'000'000'000;
  EXPECT_EQ(key_of(c), "model.max_len");
  c = {};
  c.time_buckets = 1'000'000'000;
  EXPECT_EQ(key_of(c), "model.time_buckets");
  c = {};
  c.num_negatives = 1'000'000'000;
  EXPECT_EQ(key_of(c), "model.num_negatives");
  c = {};
  c.personalization.segment_len = 16;
  c.personalization.max_groups = 1'000'000'000;  // would list a billion groups
  EXPECT_EQ(key_of(c), "personalization.max_groups");
  c = {};
  c.personalization.groups = "64:4,128:100000";
  EXPECT_EQ(key_of(c), "personalization.groups");
  // A size descriptor's values are bounded too.
  c = {};
  apply_size_descriptor(c, "hstu-d999999999");
  EXPECT_EQ(key_of(c), "model.dim");
}

}  // namespace longrec::model

namespace longrec::model {

// HLLM: the item LLM encodes every item a step reads, each with its text: a long text limit over a
// big step is refused by hllm.max_text_len, and the item LLM's terms appear in the estimate.
TEST(StepMemory, HllmCountsTheItemLlmOverTheStepsItems) {
  ModelConfig config;
  config.backbone = "hllm";
  config.dim = 64;
  config.heads = 4;
  config.hllm.vocab_size = 2000;
  auto shape = default_shape();
  shape.num_items = 100'000;
  const auto estimate = estimate_step_memory(config, shape);
  bool activations = false, weights = false;
  for (const auto& t : estimate.terms) {
    activations |= t.what == "item LLM activations";
    weights |= t.what == "item LLM weights with gradients and AdamW state";
    EXPECT_NE(t.what, "position tables");  // rotary positions: no table
  }
  EXPECT_TRUE(activations);
  EXPECT_TRUE(weights);
  config.hllm.max_text_len = 8192;
  const auto r = refusal_of(config, shape);
  EXPECT_EQ(r.key, "hllm.max_text_len") << r.message;
  EXPECT_NE(r.message.find("item LLM"), std::string::npos) << r.message;
}

}  // namespace longrec::model
