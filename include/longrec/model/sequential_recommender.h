// The common frame around a backbone (design section 4): item embeddings
// scaled by sqrt(D) plus learned positions, dropout, backbone, L2-normalised
// user vectors; cosine scores over temperature against L2-normalised items,
// trained with sampled softmax (model/sampled_softmax.h).
#pragma once

#include <torch/torch.h>

#include <memory>

#include "longrec/model/backbone.h"
#include "longrec/model/item_vectors.h"
#include "longrec/model/model_config.h"
#include "longrec/model/personalization.h"
#include "longrec/model/sequence_batch.h"
#include "longrec/model/text_items.h"

namespace longrec::model {

// Whether an hllm model builds its item LLM (the "item_encoder" submodule).
// Serving a bundle exported without it (--export.item_llm=false) omits it: the
// bundle's item vectors rank the known items, and the configuration, hence the
// architecture signature of serving states, stays the trained model's.
enum class ItemLlm { kBuild, kOmit };

class SequentialRecommender : public torch::nn::Module {
 public:
  explicit SequentialRecommender(const ModelConfig& config, ItemLlm item_llm = ItemLlm::kBuild);

  // item_embeddings: [B, N, D] raw rows of the batch's items; returns [B, N, D]
  // user vectors at the event positions, L2-normalised. With personalization
  // tokens the backbone runs over the interleaved slots (model.personalization.path
  // picks the dense or the block plan); token slots produce no output.
  torch::Tensor forward(const torch::Tensor& item_embeddings, const SequenceBatch& batch);
  // The same through an explicit path (tests compare the two).
  torch::Tensor forward(const torch::Tensor& item_embeddings, const SequenceBatch& batch, bool block_path);

  // Backbone outputs [B, L, D] (not normalised) of a slot sequence: events
  // from item_embeddings ([B, N, D] raw rows), tokens from the token table.
  // memory / capture as Backbone::forward.
  torch::Tensor forward_slots(const torch::Tensor& item_embeddings, const SlotSequence& slots,
                              const AttentionPlan& plan, const KeyValueMemory* memory = nullptr,
                              KeyValueMemory* capture = nullptr);

  const ModelConfig& config() const { return config_; }
  const std::shared_ptr<Backbone>& backbone() const { return backbone_; }
  // Present when personalization tokens are configured.
  const std::shared_ptr<PersonalizationTokens>& tokens() const { return tokens_; }
  torch::Tensor position_embedding;  // [max_len, D]; undefined for hllm (rotary positions inside the backbone)
  // hllm: the item LLM (present once hllm.vocab_size is known, unless omitted) and the learned logit scale
  // (ln of the scale; present with hllm.logit_scale = learned).
  const std::shared_ptr<TextItemEncoder>& item_encoder() const { return item_encoder_; }
  torch::Tensor log_logit_scale;
  // What cosine logits are multiplied by: exp(log_logit_scale) after clamping it in place to
  // [0, ln hllm.max_logit_scale] (as HLLM does at every forward), else 1 / model.temperature.
  torch::Tensor logit_scale();
  // The dtype of the dense parameters.
  torch::ScalarType dtype() const;

  // Forward FLOPs per event of a history of `width` events: backbone over the
  // pairs the configured path computes, plus scoring the positive and the
  // negatives of the loss.
  double forward_flops_per_token(std::int64_t width) const;
  // Training FLOPs (forward + backward = 3x forward) per position.
  double training_flops_per_token(std::int64_t width) const { return 3 * forward_flops_per_token(width); }

 private:
  torch::Tensor encode(torch::Tensor x, const torch::Tensor& valid, const AttentionPlan& plan,
                       const KeyValueMemory* memory, KeyValueMemory* capture);

  ModelConfig config_;
  std::shared_ptr<Backbone> backbone_;
  std::shared_ptr<PersonalizationTokens> tokens_;
  std::shared_ptr<TextItemEncoder> item_encoder_;
  bool hllm_ = false;  // item vectors enter as they are: no sqrt(D) scale, no learned positions
};

// Keys per query slot, averaged over the slots of one history of `width`
// events, for the configured personalization path (width itself without
// tokens: the causal plan computes every pair of the padded row).
double attended_keys_per_slot(const ModelConfig& config, std::int64_t width);

// The item vectors a trained `model` scores with, every item in this process
// (evaluation, export): the ID backbones' LocalItemTable (rows loaded from a
// checkpoint afterwards), or for hllm TextItemVectors over the item texts of
// the store at `dataset`, tokenized by the model's recorded tokenizer (a
// changed tokenizer or a store without text is refused: prepare_item_texts).
std::unique_ptr<ItemTable> make_item_vectors(SequentialRecommender& model, std::int64_t num_items,
                                             const std::filesystem::path& dataset, torch::Device device);

// User vectors at each row's last position: [B, D] (evaluation and serving).
// The forward runs on row chunks of at most max_attention_elements / L^2
// rows (at least one), so that the [rows, L, L] attention intermediates stay
// bounded whatever the batch size: 256 rows of 1,024 events took 18 GB at
// once. Rows are independent, so the result does not depend on the chunking.
torch::Tensor last_position_vectors(SequentialRecommender& model, ItemVectors& items, const SequenceBatch& batch,
                                    std::int64_t max_attention_elements = std::int64_t{1} << 26);

}  // namespace longrec::model
