// The serving state of personalization tokens (design section 4): per layer
// the keys/values of every token group compressed so far, plus the raw events
// not yet compressed. A request runs only the raw events against the cached
// tokens; when the raw events hold a complete segment beyond the recent
// window (and the event after it is known), that segment is compressed into
// its token group and dropped. Memory per user: groups x K x layers x 2 x
// width, plus at most R + S raw events, whatever the length of the history.
//
// Scores equal the full forward over the same history (same slots, same
// normaliser N_max, same relative biases) until the group cap is reached;
// beyond it the oldest group is dropped and the state slides (uniform layouts
// only): positions shift down by the dropped span, so what remains keeps its
// relative positions, and the newest group reuses the last token parameters.
//
// A model without tokens has the same interface: its state is the newest
// max_len events, and a score recomputes the forward over them (what a
// full-sequence model must do per request).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "longrec/model/sequential_recommender.h"

namespace longrec::model {

struct UserState {
  std::int64_t events_seen = 0;     // history events so far (n)
  std::int64_t dropped_events = 0;  // events of groups dropped by the cap
  int dropped_groups = 0;
  int groups_done = 0;                             // groups compressed, in the state's coordinates (after drops)
  std::int64_t next_position = 0;                  // interleaved position of the first raw event
  std::vector<std::int64_t> raw_items, raw_times;  // events not yet compressed, oldest first
  // Cached tokens: positions and times [M], per layer keys and values [1, H, M, d].
  std::vector<std::int64_t> token_positions, token_times;
  KeyValueMemory memory;

  std::int64_t cached_tokens() const { return static_cast<std::int64_t>(token_positions.size()); }
  // Bytes of tensors and vectors held (what the cap bounds).
  std::int64_t memory_bytes() const;
};

// Compress / append / score against one trained model (with personalization
// tokens, or without: see above). Thread-safe for distinct states (the model is only read).
class UserStateEncoder {
 public:
  // item_table: [I + 1, D] raw item rows (row 0 padding), on the model's device.
  UserStateEncoder(SequentialRecommender& model, torch::Tensor item_table);

  UserState compress(const std::vector<std::int64_t>& items, const std::vector<std::int64_t>& times) const;
  // Appends events as if they arrived one by one; all or nothing (on a
  // DataError the state is as it was).
  void append(UserState& state, const std::vector<std::int64_t>& items, const std::vector<std::int64_t>& times) const;
  // The L2-normalised user vector [D] at the newest event; request_time is
  // the time of the event being predicted (HSTU's time bias of the last query).
  torch::Tensor score(const UserState& state, std::int64_t request_time) const;

  // Binary form for a caller's own store; load refuses a state of another
  // model (backbone, layers, heads, widths, token layout) or a damaged one.
  std::string serialize(const UserState& state) const;
  UserState deserialize(const std::string& bytes) const;

 private:
  void compress_ready_groups(UserState& state) const;
  void drop_oldest_group(UserState& state) const;
  torch::Tensor embed(const std::vector<std::int64_t>& items) const;  // [1, n, D]
  // Throws DataError naming the first id outside 1..I.
  void check_item_ids(const std::vector<std::int64_t>& items) const;
  std::string signature() const;

  SequentialRecommender& model_;
  torch::Tensor item_table_;
  std::vector<TokenGroupSpec> specs_;
  int recent_window_;
  std::optional<int> time_buckets_;
};

}  // namespace longrec::model
