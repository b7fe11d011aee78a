// HLLM's item side (issue 16): every item's text as the item LLM reads it,
// the item LLM itself, and the item vectors it computes (an ItemVectors, so
// that the loss, evaluation, export and serving take them like a table's).
//
// An item's input is [BOS] + prompt + its text's tokens, truncated to
// hllm.max_text_len, then one learned [ITEM] embedding; the item vector is the
// item LLM's last state (after the final norm) at [ITEM] (or, with
// hllm.pooling = mean, the mean of the text's last states). Items run packed
// end to end (llama::PackedSequences), in chunks of hllm.encode_chunk.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "longrec/model/item_table.h"
#include "longrec/model/llama/llama.h"
#include "longrec/model/model_config.h"

namespace longrec::text {
class Tokenizer;
struct ItemTokens;
}  // namespace longrec::text

namespace longrec::model {

class SequentialRecommender;

// The item LLM's token ids of every item (dense ids 1..I), [ITEM] excluded.
class ItemTextInputs {
 public:
  // Empty; every item input starts with `prefix` ([BOS] + prompt ids) and keeps at most max_len ids.
  ItemTextInputs(std::vector<std::int32_t> prefix, std::int64_t max_len);
  // Empty, with the prefix and length of `config` under `tokenizer` (serving composes new items' texts with it).
  ItemTextInputs(const text::Tokenizer& tokenizer, const HllmConfig& config);
  // From the store's cached text tokens (text::tokenize_item_texts) under `tokenizer`.
  ItemTextInputs(const text::ItemTokens& tokens, const text::Tokenizer& tokenizer, const HllmConfig& config);

  std::int64_t num_items() const { return static_cast<std::int64_t>(offsets_.size()) - 1; }
  std::span<const std::int32_t> item(std::int64_t id) const;  // id in 1..I
  // The ids of one text as an item input: [BOS] + prompt + text, truncated.
  std::vector<std::int32_t> compose(std::span<const std::int32_t> text_ids) const;
  // Appends an item (its text's token ids, as Tokenizer::encode gives them); returns its dense id.
  std::int64_t append(std::span<const std::int32_t> text_ids);
  // Items whose text was empty (their input is [BOS] + prompt alone).
  std::int64_t items_without_text() const { return without_text_; }
  std::int64_t total_tokens() const { return static_cast<std::int64_t>(ids_.size()); }

 private:
  std::vector<std::int32_t> prefix_;  // [BOS] + prompt
  std::int64_t max_len_ = 0;
  std::vector<std::int64_t> offsets_{0};
  std::vector<std::int32_t> ids_;
  std::int64_t without_text_ = 0;
};

// The item texts of the HLLM model `config` over the store at `dataset`:
// loads hllm.tokenizer (ConfigError("hllm.tokenizer") when unset; errors name
// the file), refuses a tokenizer other than the one recorded in
// hllm.tokenizer_checksum (a trained model's) or one with more ids than
// hllm.vocab_size, and otherwise records both in `config`; refuses a store
// without item text (DataError naming the dataset). Token ids come from the
// token cache at `cache` (empty: not cached).
std::shared_ptr<ItemTextInputs> prepare_item_texts(ModelConfig& config, const std::filesystem::path& dataset,
                                                   const std::filesystem::path& cache = {});

// hllm.item_pretrained (a Hugging Face Llama directory): the item LLM's sizes
// come from its config.json. Keys left at 0 (hllm.item_blocks, item_heads,
// item_kv_heads, item_ffn_dim, vocab_size) take its values; keys set to
// another value, a hidden size other than model.dim, or another rope_theta /
// rms_norm_eps than hllm's, are refused by name. No-op without the key.
void apply_item_pretrained_sizes(ModelConfig& config);
// Copies the directory's weights into the model's item LLM (after
// apply_item_pretrained_sizes built it with the same shapes; the [ITEM] token
// stays as initialised). No-op without hllm.item_pretrained.
void load_item_pretrained(SequentialRecommender& model);

// The item LLM and the [ITEM] embedding (a submodule of the HLLM
// SequentialRecommender, so that the dense optimizer, gradient all-reduce,
// checkpoints and bundles carry it like every other parameter).
class TextItemEncoder : public torch::nn::Module {
 public:
  explicit TextItemEncoder(const ModelConfig& config);
  // Raw item vectors [N, D] of item ids [N] (any device), differentiable.
  torch::Tensor encode(const ItemTextInputs& texts, const torch::Tensor& ids);
  // Forward FLOPs of encoding `ids` (projections, MLP, causal attention within each item).
  double forward_flops(const ItemTextInputs& texts, const torch::Tensor& ids) const;

  llama::LlamaModel llm{nullptr};
  torch::Tensor item_token;  // [1, D]; undefined with mean pooling

 private:
  bool mean_pooling_ = false;
  llama::LlamaConfig llama_;
};

// Item vectors computed by the item LLM. Training (grad mode on): lookup
// encodes the step's ids afresh, differentiable; apply_gradients (after the
// optimizer step) marks the cached catalogue stale. Without grad (evaluation,
// export, serving, and lookups of the user side in evaluation) every item is
// encoded once, in chunks, and read from that cache until the next update.
// Each rank keeps the whole catalogue (I x D) and, for evaluation, owns the
// contiguous slice `rank` of `world` (owned_ids is a partition).
class TextItemVectors final : public ItemTable {
 public:
  TextItemVectors(std::shared_ptr<TextItemEncoder> encoder, std::shared_ptr<const ItemTextInputs> texts,
                  int encode_chunk, int rank = 0, int world = 1);
  std::int64_t num_items() const override { return texts_->num_items(); }
  std::int64_t dim() const override;
  ItemRows lookup(const torch::Tensor& unique_ids) override;
  void apply_gradients(const ItemRows& rows, double lr) override;
  torch::Tensor normalized_vectors(const torch::Tensor& ids) override;
  torch::Tensor owned_ids() const override;
  torch::Tensor owned_normalized_vectors(std::int64_t begin, std::int64_t end) override;
  // No state of its own: the item LLM is part of the model's parameters.
  std::map<std::string, torch::Tensor> owned_state() override { return {}; }
  void load_owned_state(const std::map<std::string, torch::Tensor>&) override { invalidate(); }

  // Every item's raw vector, [I+1, D] (row 0 zero), encoded when stale.
  const torch::Tensor& table();
  void invalidate() {
    table_ = torch::Tensor();
    normalized_ = torch::Tensor();
  }
  const ItemTextInputs& texts() const { return *texts_; }

 private:
  std::shared_ptr<TextItemEncoder> encoder_;
  std::shared_ptr<const ItemTextInputs> texts_;
  int chunk_, rank_, world_;
  torch::Tensor table_, normalized_;
};

}  // namespace longrec::model
