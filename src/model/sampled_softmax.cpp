#include "longrec/model/sampled_softmax.h"

#include <algorithm>

#include "longrec/model/sampled_scores.h"

namespace longrec::model {

torch::Tensor sampled_softmax_loss(SequentialRecommender& model, const StepInputs& inputs, const ItemRows& rows,
                                   std::int64_t loss_positions) {
  const auto& config = model.config();
  const auto& batch = inputs.batch;
  const auto& positives = inputs.positives;
  const auto& negatives = inputs.negatives;
  const auto P = inputs.positions();
  const auto K = static_cast<std::int64_t>(config.num_negatives);

  auto item_inputs = embed(rows, inputs.inputs_index()).view({batch.rows(), batch.width(), -1});
  auto target_rows = l2_normalize(embed(rows, inputs.positives_index()));                 // [P, D]
  auto users = model.forward(item_inputs, batch);                                         // [B, L, D]
  auto queries = users.reshape({-1, users.size(-1)}).index_select(0, inputs.supervised);  // [P, D]
  // 1 / temperature, or HLLM's learned logit scale (a differentiable scalar).
  const auto inv_t = model.logit_scale().to(queries.scalar_type());
  // HLLM masks negatives that are near copies of the positive (cosine above hllm.nce_threshold):
  // items with the same text, or a popular item's twin, would otherwise be pushed apart.
  const bool mask_near = config.backbone == "hllm" && config.hllm.nce_threshold < 1.0;
  auto positive_logits = (queries * target_rows).sum(-1, true) * inv_t;  // [P, 1]
  std::vector<torch::Tensor> logits{positive_logits};
  constexpr double kMasked = -5e4;  // as the reference: a negative equal to the target
  if (K > 0) {
    torch::Tensor negative_logits, same;
    if (config.negatives == "shared") {
      auto negative_rows = l2_normalize(embed(rows, inputs.negatives_index()));  // [K, D]
      negative_logits = torch::matmul(queries, negative_rows.t()) * inv_t;       // [P, K]
      same = positives.unsqueeze(1) == negatives.unsqueeze(0);
      if (mask_near) {
        torch::NoGradGuard no_grad;
        same = same | (torch::matmul(target_rows, negative_rows.t()) > config.hllm.nce_threshold);
      }
    } else {
      // Each position against its own K rows, without a [P, K, D] gather.
      const auto index = inputs.negatives_index().inverse.view({P, K});
      const auto normalized = l2_normalize(rows.rows);
      negative_logits = sampled_scores(queries, normalized, index) * inv_t;
      same = positives.unsqueeze(1) == negatives;
      if (mask_near) {
        torch::NoGradGuard no_grad;
        same = same | (sampled_scores(target_rows, normalized, index) > config.hllm.nce_threshold);
      }
    }
    logits.push_back(negative_logits.masked_fill(same, kMasked));
  }
  if (config.in_batch_negatives) {
    auto in_batch = torch::matmul(queries, target_rows.t()) * inv_t;  // [P, P]
    logits.push_back(in_batch.masked_fill(positives.unsqueeze(1) == positives.unsqueeze(0), kMasked));
  }
  auto all_logits = torch::cat(logits, 1);
  const auto normalizer = loss_positions > 0 ? loss_positions : std::max<std::int64_t>(P, 1);
  return -torch::log_softmax(all_logits, 1).select(1, 0).sum() / static_cast<double>(normalizer);
}

TrainingLoss sampled_softmax_loss(SequentialRecommender& model, ItemVectors& items, const SequenceBatch& batch,
                                  std::uint64_t negatives_seed, std::int64_t loss_positions) {
  const auto inputs = prepare_step_inputs(batch, model.config(), items.num_items(), negatives_seed);
  TrainingLoss out;
  out.rows = items.lookup(inputs.index.unique);
  out.positions = inputs.positions();
  out.loss = sampled_softmax_loss(model, inputs, out.rows, loss_positions);
  return out;
}

}  // namespace longrec::model
