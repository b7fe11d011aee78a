// Which slots of a sequence attend to which: built once per batch, shared by
// every layer of a backbone.
//
// A sequence has L slots per row (events, and with personalization tokens,
// token slots in between). An attention plan is a list of query groups. A
// group gathers G blocks of Lq query slots per row and, for each block, Lk
// key slots; the pairs (query, key) it computes are exactly those the
// structure allows (`allowed`), so a plain causal sequence is one group of
// one block with Lq = Lk = L, and the personalization-token block path is one
// group of segment blocks (each against [tokens so far, own block]) plus one
// group for the recent window. Every valid query slot belongs to exactly one
// group; cost is sum over groups of B G Lq Lk instead of B L^2.
//
// Key indices address [memory slots (M), the row's L slots, one dummy slot]:
// memory holds cached keys/values of earlier tokens (serving); the dummy slot
// pads blocks that are shorter than their group's width.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <optional>
#include <vector>

namespace longrec::model {

struct AttentionGroup {
  std::int64_t blocks = 1;   // G
  std::int64_t queries = 0;  // Lq
  std::int64_t keys = 0;     // Lk
  // Flat indices into the [B * (L + 1)] query slot axis, [B G Lq] int64;
  // undefined: all L slots of each row in order (then G = 1, Lq = L).
  torch::Tensor query_index;
  // Flat indices into the [B * (M + L + 1)] key slot axis, [B G Lk] int64;
  // undefined: all L slots of each row in order (M = 0).
  torch::Tensor key_index;
  torch::Tensor allowed;  // [B, G, Lq, Lk] bool
  // For relative biases (HSTU); undefined unless the plan was built with them.
  torch::Tensor position_index;  // [B or 1, G, Lq, Lk] int64: N_max - 1 + pos(key) - pos(query)
  torch::Tensor time_bucket;     // [B, G, Lq, Lk] int64: bucket(query time - key time)
};

struct AttentionPlan {
  std::int64_t rows = 0;    // B
  std::int64_t slots = 0;   // L
  std::int64_t memory = 0;  // M: cached key/value slots ahead of the row's own (serving)
  torch::Tensor valid;      // [B, L] bool: real slots (events and tokens), not padding
  std::vector<AttentionGroup> groups;
  // Absolute positions for rotary embeddings (the HLLM user LLM): of each slot
  // ([B, L] int64; padding arbitrary) and of each memory slot ([B, M], when M > 0).
  torch::Tensor slot_position, memory_position;
};

// Maps raw scores q.k [B, H, G, Lq, Lk] of one group to attention weights of
// the same shape, zero where the group's `allowed` is false.
using AttentionScorer = std::function<torch::Tensor(const torch::Tensor& scores, const AttentionGroup& group)>;

// out[b, h, i] = sum_j weights(i, j) v[b, h, j] over the plan's pairs.
// q, k, v: [B, H, L, d]; memory_k / memory_v: [B, H, M, d] or undefined.
// Returns [B, H, L, d]; slots no group queries (padding) get zeros.
torch::Tensor attend(const AttentionPlan& plan, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const AttentionScorer& scorer, const torch::Tensor& memory_k = {},
                     const torch::Tensor& memory_v = {});

// HSTU's log-time bucket of a time gap: clamp(floor(ln(max(|dt|, 1)) / 0.301), 0, num_buckets).
torch::Tensor hstu_time_bucket(const torch::Tensor& dt, int num_buckets);

// The plain causal plan of a left-aligned padded batch: valid: [B, L] bool;
// with relative features when times are given ([B, L] int64 event times and
// the times of the events each position predicts).
AttentionPlan causal_plan(const torch::Tensor& valid, int max_len, const std::optional<int>& time_buckets,
                          const torch::Tensor& times = {}, const torch::Tensor& query_times = {});

}  // namespace longrec::model
