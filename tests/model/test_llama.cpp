// Llama decoder blocks (issue 15): configuration refusals, state loading, a float64 gradient
// check of one block, masks and positions, and parity with Hugging Face transformers.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "longrec/core/error.h"
#include "longrec/model/llama/llama.h"
#include "longrec/model/llama/pretrained.h"

namespace ll = longrec::model::llama;

namespace {

// Runs f and requires a ConfigError whose message names `name`.
template <typename F>
void expect_refused(F&& f, const std::string& name) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one naming '" << name << "'";
  } catch (const longrec::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

nlohmann::json tiny_hf_config() {
  return nlohmann::json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 1, "dtype": "float32", "eos_token_id": 2, "head_dim": 16, "hidden_act": "silu",
    "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 96, "max_position_embeddings": 128,
    "mlp_bias": false, "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2,
    "num_key_value_heads": 2, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null,
    "rope_theta": 5000.0, "tie_word_embeddings": false, "transformers_version": "4.57.1",
    "use_cache": true, "vocab_size": 300})");
}

ll::LlamaConfig small_config() {
  auto c = ll::LlamaConfig::from_descriptor("llama-d32-l2-h4-kv2-i48-v50");
  c.rope_theta = 777.0;
  return c;
}

// Random norm weights (the default ones would hide a missing norm weight).
void randomize(ll::LlamaModel& m, double scale = 0.2) {
  torch::NoGradGuard no_grad;
  for (auto& p : m->named_parameters()) {
    if (p.key().find("norm") != std::string::npos) {
      p.value().copy_(1.0 + 0.5 * torch::randn_like(p.value()));
    } else {
      p.value().copy_(scale * torch::randn_like(p.value()));
    }
  }
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST(LlamaConfig, DescriptorSizes) {
  auto c = ll::LlamaConfig::from_descriptor("llama-d128-l2-h4-kv2");
  EXPECT_EQ(c.hidden_size, 128);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.intermediate_size, 512);
  auto d = ll::LlamaConfig::from_descriptor("llama-d64-l3-h8-i100-v500");
  EXPECT_EQ(d.num_key_value_heads, 8);
  EXPECT_EQ(d.intermediate_size, 100);
  EXPECT_EQ(d.vocab_size, 500);
  expect_refused([] { ll::LlamaConfig::from_descriptor("hstu-d64-l2-h2"); }, "llama.size");
  expect_refused([] { ll::LlamaConfig::from_descriptor("llama-d100-l2-h3"); }, "llama.size");
  expect_refused([] { ll::LlamaConfig::from_descriptor("llama-d64-l2-h4-kv3"); }, "num_key_value_heads");
  expect_refused([] { ll::LlamaConfig::from_descriptor("llama-d64-l0-h4"); }, "num_hidden_layers");
}

TEST(LlamaConfig, HfJsonReadsSizes) {
  auto c = ll::LlamaConfig::from_hf_json(tiny_hf_config().dump());
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 96);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.vocab_size, 300);
  EXPECT_DOUBLE_EQ(c.rope_theta, 5000.0);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_FALSE(c.tie_word_embeddings);
  auto j = tiny_hf_config();
  j.erase("num_key_value_heads");
  j.erase("head_dim");
  j["rope_scaling"] = {{"rope_type", "default"}};
  j["tie_word_embeddings"] = true;
  auto d = ll::LlamaConfig::from_hf_json(j.dump());
  EXPECT_EQ(d.num_key_value_heads, 4);
  EXPECT_EQ(d.head_dim, 16);
  EXPECT_TRUE(d.tie_word_embeddings);
  j["head_dim"] = 32;  // wider than hidden / heads: supported (q_proj is [heads * head_dim, hidden])
  EXPECT_EQ(ll::LlamaConfig::from_hf_json(j.dump()).head_dim, 32);
}

TEST(LlamaConfig, HfJsonRefusesUnimplementedKeysByName) {
  auto refused = [](const std::string& key, const nlohmann::json& value) {
    auto j = tiny_hf_config();
    j[key] = value;
    expect_refused([&] { ll::LlamaConfig::from_hf_json(j.dump()); }, "config.json:" + key);
  };
  refused("rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}});
  refused("rope_scaling", {{"type", "linear"}, {"factor", 2.0}});
  refused("rope_scaling", {{"rope_type", "yarn"}});
  refused("attention_bias", true);
  refused("mlp_bias", true);
  refused("hidden_act", "gelu");
  refused("attention_dropout", 0.1);
  refused("model_type", "mistral");
  refused("sliding_window", 4096);  // unknown keys are refused, not ignored
  refused("num_key_value_heads", 3);
  refused("head_dim", 15);
  refused("hidden_size", "64");
  refused("vocab_size", int64_t{1} << 40);  // bounded: sizes never overflow their products
  refused("rope_theta", -1.0);
  refused("rms_norm_eps", 0.0);
  auto j = tiny_hf_config();
  j.erase("hidden_size");
  expect_refused([&] { ll::LlamaConfig::from_hf_json(j.dump()); }, "config.json:hidden_size");
  expect_refused([] { ll::LlamaConfig::from_hf_json("{not json"); }, "config.json");
}

TEST(LlamaModel, LoadStateRefusesMissingUnexpectedAndMisshapenByName) {
  auto c = small_config();
  ll::LlamaModel model(c);
  std::map<std::string, torch::Tensor> state;
  for (const auto& [name, shape] : model->expected_shapes()) state[name] = torch::randn(shape);
  state["lm_head.weight"] = torch::randn({c.vocab_size, c.hidden_size});
  EXPECT_EQ(state.size(), 1u + 1u + 2u * 9u + 1u);
  model->load_state(state);
  EXPECT_TRUE(model->layers[1]->mlp->up_proj->weight.equal(state["model.layers.1.mlp.up_proj.weight"]));
  EXPECT_TRUE(model->norm->weight.equal(state["model.norm.weight"]));

  auto without = [&](const std::string& name) {
    auto s = state;
    s.erase(name);
    return s;
  };
  expect_refused([&] { model->load_state(without("model.layers.1.self_attn.k_proj.weight")); },
                 "model.layers.1.self_attn.k_proj.weight");
  expect_refused([&] { model->load_state(without("lm_head.weight")); }, "lm_head.weight");
  auto extra = state;
  extra["model.layers.2.mlp.up_proj.weight"] = torch::randn({48, 32});
  expect_refused([&] { model->load_state(extra); }, "model.layers.2.mlp.up_proj.weight");
  auto bias = state;
  bias["model.layers.0.self_attn.q_proj.bias"] = torch::randn({32});
  expect_refused([&] { model->load_state(bias); }, "model.layers.0.self_attn.q_proj.bias");
  auto misshapen = state;
  misshapen["model.layers.0.self_attn.v_proj.weight"] = torch::randn({32, 32});  // full heads, not KV heads
  expect_refused([&] { model->load_state(misshapen); }, "model.layers.0.self_attn.v_proj.weight");

  auto tied_config = c;
  tied_config.tie_word_embeddings = true;
  ll::LlamaModel tied(tied_config);
  expect_refused([&] { tied->load_state(state); }, "lm_head.weight");
  tied->load_state(without("lm_head.weight"));
}

// Central finite differences in float64 against autograd, on one decoder block: a few input
// elements and a few elements of every parameter.
TEST(LlamaBlock, GradientCheckFloat64) {
  torch::manual_seed(7);
  auto c = small_config();
  ll::LlamaDecoderLayer block(c);
  block->to(torch::kDouble);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : block->named_parameters()) {
      if (p.key().find("norm") != std::string::npos) {
        p.value().copy_(1.0 + 0.5 * torch::randn_like(p.value()));
      } else {
        p.value().copy_(0.3 * torch::randn_like(p.value()));
      }
    }
  }
  const int64_t B = 2, L = 5;
  auto x = torch::randn({B, L, c.hidden_size}, torch::kDouble).requires_grad_(true);
  auto positions = torch::tensor({{0, 1, 2, 3, 4}, {3, 4, 5, 6, 7}}, torch::kLong);
  auto [cos, sin] = ll::rotary_cos_sin(c, positions, torch::kDouble, torch::kCPU);
  auto weights = torch::randn({B, L, c.hidden_size}, torch::kDouble);
  // Causal, then an explicit mask (the second row left-padded by two tokens).
  auto valid = torch::tensor({{1, 1, 1, 1, 1}, {0, 0, 1, 1, 1}}, torch::kLong).to(torch::kBool);
  int count = 0;
  for (const auto& mask : {torch::Tensor(), ll::causal_padding_mask(valid)}) {
    auto loss_of = [&] { return (block->forward(x, cos, sin, mask) * weights).sum(); };

    block->zero_grad();
    x.mutable_grad() = torch::Tensor();
    loss_of().backward();
    std::vector<std::pair<std::string, torch::Tensor>> checked = {{"input", x}};
    for (auto& p : block->named_parameters()) checked.emplace_back(p.key(), p.value());
    const double h = 1e-6;
    for (auto& [name, t] : checked) {
      auto grad = t.grad().clone();
      auto flat = t.data().view({-1});
      for (int64_t idx : {int64_t{0}, flat.numel() / 3, flat.numel() - 1}) {
        const double saved = flat[idx].item<double>();
        double up, down;
        {
          torch::NoGradGuard no_grad;
          flat[idx] = saved + h;
          up = loss_of().item<double>();
          flat[idx] = saved - h;
          down = loss_of().item<double>();
          flat[idx] = saved;
        }
        const double numeric = (up - down) / (2 * h);
        const double analytic = grad.view({-1})[idx].item<double>();
        EXPECT_NEAR(analytic, numeric, 1e-6 * std::max(1.0, std::abs(numeric))) << name << "[" << idx << "]";
        ++count;
      }
    }
  }
  EXPECT_EQ(count, 2 * 3 * 10);
}

TEST(LlamaModel, CausalEqualsExplicitCausalMask) {
  torch::manual_seed(3);
  auto c = small_config();
  ll::LlamaModel model(c);
  randomize(model);
  const int64_t B = 3, L = 7;
  auto ids = torch::randint(0, c.vocab_size, {B, L});
  auto positions = torch::arange(L);
  auto causal = model->forward(ids, positions);
  auto tril = torch::ones({L, L}, torch::kBool).tril();
  for (const auto& mask : {tril, tril.unsqueeze(0).expand({B, L, L}), tril.view({1, 1, L, L}),
                           ll::causal_padding_mask(torch::ones({B, L}, torch::kBool))}) {
    auto explicit_mask = model->forward(ids, positions, mask);
    ASSERT_EQ(explicit_mask.hidden_states.size(), causal.hidden_states.size());
    for (size_t k = 0; k < causal.hidden_states.size(); ++k) {
      EXPECT_TRUE(explicit_mask.hidden_states[k].equal(causal.hidden_states[k])) << "hidden state " << k;
    }
  }
  // And the mask is used: a full (non-causal) mask changes the first layer's output at every
  // position but the last (which sees every key either way).
  auto full = model->forward(ids, positions, torch::ones({L, L}, torch::kBool));
  const auto& full1 = full.hidden_states[1];
  const auto& causal1 = causal.hidden_states[1];
  EXPECT_GT(max_diff(full1.narrow(1, 0, L - 1), causal1.narrow(1, 0, L - 1)), 1e-3);
  EXPECT_LT(max_diff(full1.narrow(1, L - 1, 1), causal1.narrow(1, L - 1, 1)), 1e-5);
  EXPECT_GT(max_diff(full.last_hidden_state(), causal.last_hidden_state()), 1e-3);
}

// Right-aligned (left-padded, masked) sequences give the outputs of the unpadded ones on their
// real tokens; rotary embeddings see relative positions only, so shifted positions change nothing.
TEST(LlamaModel, RightAlignedEqualsLeftAlignedShifted) {
  torch::manual_seed(5);
  auto c = small_config();
  ll::LlamaModel model(c);
  randomize(model);
  model->to(torch::kDouble);
  const int64_t n = 6, pad = 3, L = n + pad;
  auto ids = torch::randint(0, c.vocab_size, {1, n});
  auto plain = model->forward(ids, torch::arange(n));

  // Left padding with a mask; positions count from the first real token.
  auto padded_ids = torch::cat({torch::zeros({1, pad}, torch::kLong), ids}, 1);
  auto valid = torch::arange(L).ge(pad).unsqueeze(0);
  auto positions = (torch::arange(L) - pad).clamp_min(0).unsqueeze(0);
  auto right = model->forward(padded_ids, positions, ll::causal_padding_mask(valid));
  // Shifted positions (the real tokens at pad..L-1), same mask.
  auto shifted = model->forward(padded_ids, torch::arange(L).unsqueeze(0), ll::causal_padding_mask(valid));
  // Unpadded, positions shifted by 11.
  auto moved = model->forward(ids, torch::arange(n) + 11);
  for (size_t k = 0; k < plain.hidden_states.size(); ++k) {
    const auto& want = plain.hidden_states[k];
    EXPECT_LT(max_diff(right.hidden_states[k].narrow(1, pad, n), want), 1e-12) << "hidden state " << k;
    EXPECT_LT(max_diff(shifted.hidden_states[k].narrow(1, pad, n), want), 1e-10) << "hidden state " << k;
    EXPECT_LT(max_diff(moved.hidden_states[k], want), 1e-10) << "hidden state " << k;
    EXPECT_FALSE(right.hidden_states[k].isnan().any().item<bool>());
  }
  // The padding mask is needed: without it the padding changes the real tokens.
  auto unmasked = model->forward(padded_ids, positions);
  EXPECT_GT(max_diff(unmasked.last_hidden_state().narrow(1, pad, n), plain.last_hidden_state()), 1e-3);

  // The same through inputs_embeds.
  auto embeds = torch::randn({1, n, c.hidden_size}, torch::kDouble);
  auto padded_embeds = torch::cat({torch::randn({1, pad, c.hidden_size}, torch::kDouble), embeds}, 1);
  auto e_plain = model->forward_embeds(embeds, torch::arange(n));
  auto e_right = model->forward_embeds(padded_embeds, positions, ll::causal_padding_mask(valid));
  EXPECT_LT(max_diff(e_right.last_hidden_state().narrow(1, pad, n), e_plain.last_hidden_state()), 1e-12);
}

// Packed variable-length sequences (the item LLM's path) give every hidden state of each sequence
// run alone, with gradients; the buckets keep the padding within the slack.
TEST(LlamaPacked, EqualsEachSequenceAloneWithGradients) {
  torch::manual_seed(11);
  auto c = small_config();
  ll::LlamaModel model(c);
  randomize(model);
  model->to(torch::kDouble);
  const std::vector<int64_t> lengths = {7, 1, 13, 7, 3, 12, 5, 9, 2, 13};
  const auto packed = ll::PackedSequences::from_lengths(lengths);
  EXPECT_EQ(packed.total_tokens, 72);
  EXPECT_GT(packed.buckets.size(), 1u);
  EXPECT_LE(static_cast<double>(packed.padded_tokens), 1.125 * 72 + 13);  // each bucket within slack of its real
  int64_t sequences = 0;
  for (const auto& b : packed.buckets) {
    sequences += b.sequences;
    EXPECT_EQ(b.keep.size(0) <= b.sequences * b.length, true);
  }
  EXPECT_EQ(sequences, static_cast<int64_t>(lengths.size()));

  auto embeds = torch::randn({packed.total_tokens, c.hidden_size}, torch::kDouble).requires_grad_(true);
  auto out = model->forward_packed_embeds(embeds, packed);
  ASSERT_EQ(out.hidden_states.size(), static_cast<size_t>(c.num_hidden_layers + 1));
  // A loss on every token and, more heavily, on each sequence's last token (the [ITEM] position).
  auto weights = torch::randn({packed.total_tokens, c.hidden_size}, torch::kDouble);
  auto loss = (out.last_hidden_state() * weights).sum() +
              out.last_hidden_state().index_select(0, packed.last_token).pow(2).sum();
  loss.backward();
  const auto packed_embed_grad = embeds.grad().clone();
  std::vector<torch::Tensor> packed_param_grads;
  // (embed_tokens is not used by the inputs_embeds path: no gradient.)
  for (auto& p : model->parameters()) packed_param_grads.push_back(p.grad().defined() ? p.grad().clone() : p.grad());
  model->zero_grad();

  auto alone_embeds = embeds.detach().clone().requires_grad_(true);
  int64_t start = 0;
  torch::Tensor alone_loss = torch::zeros({}, torch::kDouble);
  for (size_t i = 0; i < lengths.size(); ++i) {
    const auto n = lengths[i];
    auto alone = model->forward_embeds(alone_embeds.narrow(0, start, n).unsqueeze(0), torch::arange(n));
    for (size_t k = 0; k < alone.hidden_states.size(); ++k) {
      EXPECT_LT(max_diff(out.hidden_states[k].narrow(0, start, n), alone.hidden_states[k][0]), 1e-12)
          << "sequence " << i << ", hidden state " << k;
    }
    EXPECT_EQ(packed.last_token[static_cast<int64_t>(i)].item<int64_t>(), start + n - 1);
    const auto last = alone.last_hidden_state()[0];
    alone_loss = alone_loss + (last * weights.narrow(0, start, n)).sum() + last[n - 1].pow(2).sum();
    start += n;
  }
  alone_loss.backward();
  EXPECT_LT(max_diff(alone_embeds.grad(), packed_embed_grad), 1e-10);
  size_t i = 0;
  for (auto& p : model->parameters()) {
    const auto& want = packed_param_grads[i++];
    ASSERT_EQ(p.grad().defined(), want.defined());
    if (want.defined()) {
      EXPECT_LT(max_diff(p.grad(), want), 1e-9);
    }
  }

  // Token ids take the same path; float32 agrees within 1e-5.
  model->to(torch::kFloat);
  auto ids = torch::randint(0, c.vocab_size, {packed.total_tokens});
  auto by_ids = model->forward_packed(ids, packed);
  start = 0;
  for (const auto n : lengths) {
    auto alone = model->forward(ids.narrow(0, start, n).unsqueeze(0), torch::arange(n));
    EXPECT_LT(max_diff(by_ids.last_hidden_state().narrow(0, start, n), alone.last_hidden_state()[0]), 1e-5);
    start += n;
  }
}

TEST(LlamaPacked, BucketsAndRefusals) {
  // Equal lengths: one bucket, no padding.
  auto same = ll::PackedSequences::from_lengths({4, 4, 4});
  ASSERT_EQ(same.buckets.size(), 1u);
  EXPECT_EQ(same.padded_tokens, 12);
  // slack 0: a bucket per distinct length, no padding at all.
  auto exact = ll::PackedSequences::from_lengths({5, 2, 5, 3, 2}, torch::kCPU, 0.0);
  EXPECT_EQ(exact.buckets.size(), 3u);
  EXPECT_EQ(exact.padded_tokens, exact.total_tokens);
  EXPECT_TRUE(
      exact.position_ids.equal(torch::tensor({0, 1, 2, 3, 4, 0, 1, 0, 1, 2, 3, 4, 0, 1, 2, 0, 1}, torch::kLong)));
  expect_refused([] { ll::PackedSequences::from_lengths({}); }, "at least one sequence");
  expect_refused([] { ll::PackedSequences::from_lengths({3, 0, 2}); }, "sequence 1 has length 0");
  expect_refused([] { ll::PackedSequences::from_lengths({3}, torch::kCPU, std::nan("")); }, "slack nan");
}

// Parity with transformers' LlamaForCausalLM: tests/model/llama_reference.py writes the reference
// (CTest model.llama_parity runs it and then this suite with LONGREC_LLAMA_REFERENCE set).
namespace {

std::map<std::string, torch::Tensor> read_reference(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto value = torch::pickle_load(bytes);
  std::map<std::string, torch::Tensor> out;
  for (const auto& entry : value.toGenericDict()) out[entry.key().toStringRef()] = entry.value().toTensor();
  return out;
}

class LlamaParity : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("LONGREC_LLAMA_REFERENCE");
    if (dir == nullptr) GTEST_SKIP() << "LONGREC_LLAMA_REFERENCE not set (CTest model.llama_parity sets it)";
    config = ll::LlamaConfig::from_hf_file((std::filesystem::path(dir) / "config.json").string());
    ref = read_reference(std::filesystem::path(dir) / "reference.pt");
    for (auto& [name, t] : ref) {
      if (name.rfind("model.", 0) == 0 || name == "lm_head.weight") state[name] = t;
    }
  }

  // Max abs difference per hidden state (and the raw last layer) of case `name`.
  std::vector<double> errors(ll::LlamaModel& model, const std::string& name) {
    const auto& input = ref.at(name + ".input");
    const auto& positions = ref.at(name + ".positions");
    torch::Tensor mask;
    torch::Tensor rows = torch::ones(input.sizes().slice(0, 2), torch::kBool);
    if (ref.count(name + ".mask")) {
      rows = ref.at(name + ".mask").to(torch::kBool);
      mask = ll::causal_padding_mask(rows);
    }
    torch::NoGradGuard no_grad;
    auto out = input.scalar_type() == torch::kLong ? model->forward(input, positions, mask)
                                                   : model->forward_embeds(input, positions, mask);
    std::vector<double> errs;
    const auto real = rows.unsqueeze(-1);  // padding tokens' outputs are not compared
    for (int64_t k = 0; k <= config.num_hidden_layers; ++k) {
      auto want = ref.at(name + ".hidden." + std::to_string(k));
      errs.push_back(((out.hidden_states.at(k) - want).abs() * real).max().item<double>());
    }
    errs.push_back(((out.last_raw - ref.at(name + ".last_raw")).abs() * real).max().item<double>());
    return errs;
  }

  ll::LlamaConfig config;
  std::map<std::string, torch::Tensor> ref;
  std::map<std::string, torch::Tensor> state;
};

}  // namespace

TEST_F(LlamaParity, EveryLayerMatchesTransformers) {
  EXPECT_EQ(config.num_key_value_heads * 2, config.num_attention_heads);  // grouped-query attention
  EXPECT_NE(config.rope_theta, 10000.0);
  std::printf("reference: hidden %lld, %lld layers, %lld heads, %lld KV heads, head_dim %lld, rope_theta %g\n",
              static_cast<long long>(config.hidden_size), static_cast<long long>(config.num_hidden_layers),
              static_cast<long long>(config.num_attention_heads), static_cast<long long>(config.num_key_value_heads),
              static_cast<long long>(config.head_dim), config.rope_theta);
  ll::LlamaModel model(config);
  model->load_state(state);
  for (const std::string name : {"ids", "embeds", "padded"}) {
    auto errs = errors(model, name);
    ASSERT_EQ(errs.size(), static_cast<size_t>(config.num_hidden_layers + 2));
    for (size_t k = 0; k < errs.size(); ++k) {
      std::printf("parity %s %s: max abs diff %.3g\n", name.c_str(),
                  k + 1 == errs.size() ? "last layer before norm" : ("hidden state " + std::to_string(k)).c_str(),
                  errs[k]);
      EXPECT_LT(errs[k], 1e-5) << name << " hidden state " << k;
    }
  }
}

// The save_pretrained directory itself (config.json + model.safetensors), in float32 and saved in
// bf16; then longrec's own save, which transformers must load (llama_parity.sh checks it after).
TEST_F(LlamaParity, LoadsHuggingFaceDirectoriesAndSavesOnesTransformersLoads) {
  const std::filesystem::path dir = std::getenv("LONGREC_LLAMA_REFERENCE");
  auto model = ll::load_pretrained(dir);
  for (const std::string name : {"ids", "embeds", "padded"}) {
    for (double err : errors(model, name)) EXPECT_LT(err, 1e-5) << name;
  }
  auto bf16 = ll::load_pretrained(dir / "bf16");  // bf16 weights, float32 blocks
  for (double err : errors(bf16, "bf16.ids")) EXPECT_LT(err, 1e-5) << "bf16";
  EXPECT_GT(errors(bf16, "ids").at(1), 1e-4);  // the rounding is visible: the comparison is live
  // float64 blocks from the same files: the reference within float32 rounding.
  auto wide = ll::load_pretrained(dir, torch::kFloat64);
  EXPECT_EQ(wide->embed_tokens->weight.scalar_type(), torch::kFloat64);

  ll::save_pretrained(model, dir / "cpp");
  ll::save_pretrained(bf16, dir / "cpp-bf16", torch::kBFloat16);
  auto again = ll::load_pretrained(dir / "cpp");
  for (double err : errors(again, "ids")) EXPECT_EQ(err, 0.0);  // float32 round trip is exact
  // A misshapen or missing tensor is named with the directory before anything is read.
  auto small = config;
  small.intermediate_size += 1;
  ll::LlamaModel other(small);
  ll::save_pretrained(other, dir / "other");
  std::filesystem::copy_file(dir / "config.json", dir / "other" / "config.json",
                             std::filesystem::copy_options::overwrite_existing);
  try {
    (void)ll::load_pretrained(dir / "other");
    FAIL() << "loaded weights of another shape";
  } catch (const longrec::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.gate_proj.weight"), std::string::npos) << e.what();
  }
}

// The comparison can fail: the default rope_theta, or one weight off, is seen in every later layer.
TEST_F(LlamaParity, DetectsWrongThetaAndWrongWeight) {
  auto wrong_theta = config;
  wrong_theta.rope_theta = 10000.0;
  ll::LlamaModel theta_model(wrong_theta);
  theta_model->load_state(state);
  EXPECT_GT(errors(theta_model, "ids").at(1), 1e-4);

  auto perturbed = state;
  perturbed["model.layers.1.self_attn.k_proj.weight"] = state.at("model.layers.1.self_attn.k_proj.weight") * 1.01;
  ll::LlamaModel weight_model(config);
  weight_model->load_state(perturbed);
  auto errs = errors(weight_model, "embeds");
  EXPECT_LT(errs.at(1), 1e-5);  // layer 0 untouched
  EXPECT_GT(errs.at(2), 1e-5);
}
