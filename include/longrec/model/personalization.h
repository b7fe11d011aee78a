// Personalization tokens on any backbone (design section 4): the interleaved
// slot sequence of a batch, its attention plan (dense masked reference or the
// block path), and the map from slots back to events.
//
// Slot layout, shared by every row of a batch: one block per token group in
// use, each [event capacity of the group, K_g tokens], then the recent window.
// Rows whose history is shorter leave event slots of a partial group, or whole
// blocks, as padding; a row's positions count only its real slots. The dense
// and the block plans read the same slots, so both paths compute the same
// pairs and differ only in what they skip.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <vector>

#include "longrec/model/attention_plan.h"
#include "longrec/model/personalization_layout.h"
#include "longrec/model/sequence_batch.h"

namespace longrec::model {

// Cached token slots ahead of a sequence (a serving state's compressed groups).
struct TokenMemory {
  torch::Tensor position;  // [B, M] int64 interleaved positions
  torch::Tensor time;      // [B, M] int64 token times
  std::int64_t size() const { return position.defined() ? position.size(1) : 0; }
};

// Where a sequence starts in its user's history: 0 for training and full
// forwards; for a serving state, the first group not yet compressed.
struct LayoutStart {
  int group = 0;              // first token group of the slots
  std::int64_t event = 0;     // history index of the batch's first event (= that group's begin)
  std::int64_t position = 0;  // interleaved position of the first slot
};

struct SlotSequence {
  std::int64_t rows = 0, slots = 0, events = 0;  // B, L, N (batch width)
  // Per slot, row-major [B * L]: index into cat(event rows [B * N], token table [T], one zero row).
  torch::Tensor source;
  torch::Tensor position;    // [B, L] int64, 0 on padding
  torch::Tensor valid;       // [B, L] bool
  torch::Tensor key_time;    // [B, L] int64: event time; a token takes its segment's last event time
  torch::Tensor query_time;  // [B, L] int64: time of the event a slot predicts (tokens: their own time)
  torch::Tensor block;       // [B, L] int64: group index, or kRecentBlock
  torch::Tensor is_token;    // [B, L] bool
  torch::Tensor event_slot;  // [B, N] int64: each event's slot (L for padding events)
  // The block structure (same for every row).
  // Per group block: first slot, event slots (the widest part of that segment
  // in the batch, at most the configured segment) and token slots after them.
  std::vector<std::int64_t> block_begin, block_events, block_tokens;
  std::int64_t recent_begin = 0, recent_width = 0;
  std::int64_t max_position = 0;  // largest position of any real slot
  // Per row, the token groups in use and whether the last is partial.
  std::vector<int> groups_used;
  std::vector<bool> last_partial;

  static constexpr std::int64_t kRecentBlock = std::int64_t{1} << 40;
};

// Builds the slots of a left-aligned padded batch (items, times, query_times,
// lengths on any device; the result lives on the same device).
SlotSequence build_slots(const std::vector<TokenGroupSpec>& specs, int recent_window, const SequenceBatch& batch,
                         const LayoutStart& start = {});

// The attention plan over the slots: the dense masked plan (every slot
// against every slot, O(L^2)) or the block plan (each group block against
// [tokens so far, itself]; the recent window against [all tokens, itself]).
// Relative features (positions into a 2 N_max - 1 table, time buckets) are
// filled when time_buckets is set.
AttentionPlan personalization_plan(const SlotSequence& slots, bool block_path, int max_len,
                                   const std::optional<int>& time_buckets, const TokenMemory& memory = {});

// The learnable tokens: one [K_g, D] parameter block per group position,
// shared by all users, N(0, 0.02) as the reference.
class PersonalizationTokens : public torch::nn::Module {
 public:
  PersonalizationTokens(const PersonalizationConfig& config, int dim);
  torch::Tensor table;  // [T, D], group g's tokens at rows [first_token_g, first_token_g + K_g)
  const std::vector<TokenGroupSpec>& specs() const { return specs_; }

 private:
  std::vector<TokenGroupSpec> specs_;
};

}  // namespace longrec::model
