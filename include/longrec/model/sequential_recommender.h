// The common frame around a backbone (design section 4): item embeddings
// scaled by sqrt(D) plus learned positions, dropout, backbone, L2-normalised
// user vectors; cosine scores over temperature against L2-normalised items,
// trained with sampled softmax.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "longrec/model/backbone.h"
#include "longrec/model/item_embedding.h"
#include "longrec/model/model_config.h"
#include "longrec/model/sequence_batch.h"

namespace longrec::model {

class SequentialRecommender : public torch::nn::Module {
 public:
  explicit SequentialRecommender(const ModelConfig& config);

  // item_embeddings: [B, L, D] raw rows of the batch's items; returns [B, L, D]
  // user vectors, L2-normalised.
  torch::Tensor forward(const torch::Tensor& item_embeddings, const SequenceBatch& batch);

  const ModelConfig& config() const { return config_; }
  const std::shared_ptr<Backbone>& backbone() const { return backbone_; }
  torch::Tensor position_embedding;  // [max_len, D]

  // Forward FLOPs per position at width L: backbone plus scoring the positive
  // and the negatives of the loss.
  double forward_flops_per_token(std::int64_t width) const;
  // Training FLOPs (forward + backward = 3x forward) per position.
  double training_flops_per_token(std::int64_t width) const { return 3 * forward_flops_per_token(width); }

 private:
  ModelConfig config_;
  std::shared_ptr<Backbone> backbone_;
};

// The loss of one training batch and what it touched.
struct TrainingLoss {
  torch::Tensor loss;          // scalar: mean over supervised positions
  std::int64_t positions = 0;  // supervised positions (targets > 0)
  EmbeddingRows rows;          // gathered item rows (their grad after backward)
};

// Sampled softmax at every position with a target: logits are
// [cos(h, e_target), cos(h, e_neg_1..m)] / temperature, label 0; negatives are
// uniform over 1..I, per position or one pool shared by the batch, plus
// optionally the batch's other targets; a negative equal to the target is
// masked out. `generator` draws the negatives.
TrainingLoss sampled_softmax_loss(SequentialRecommender& model, ItemEmbedding& items, const SequenceBatch& batch,
                                  at::Generator& generator);

// User vectors at each row's last position: [B, D] (evaluation and serving).
torch::Tensor last_position_vectors(SequentialRecommender& model, ItemEmbedding& items, const SequenceBatch& batch);

}  // namespace longrec::model
