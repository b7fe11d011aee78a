// The serving library (design section 7): a model loaded from a bundle that
// answers top-K for a history of raw item ids or a cached UserState, and, for
// an hllm bundle with its item LLM, takes new items from their text.
// Torch-free interface (the implementation holds the model). Safe to call
// from many threads at once, add_item included: the model is only read; each
// call reads the catalogue as it was when the call began (an item added
// meanwhile is seen by the next call); a UserState is the caller's, and may
// be read by many threads but appended to by one at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "longrec/core/error.h"

namespace longrec::serve {

// Why Recommender::add_item refused an item (the message names the id). The
// HTTP server answers kDuplicate with 409, kNoItemLlm with 422 and kEmptyText
// with 400.
class ItemRefused : public DataError {
 public:
  enum class Reason { kDuplicate, kEmptyText, kNoItemLlm };
  ItemRefused(Reason reason, const std::string& message) : DataError(message), reason_(reason) {}
  Reason reason() const { return reason_; }

 private:
  Reason reason_;
};

struct Recommendation {
  std::int64_t item = 0;  // raw item id
  double score = 0;       // cosine similarity with the user vector
  std::string title;      // empty when the bundle has no titles
};

class Recommender;

// What the server keeps per user between requests (design section 7). With
// personalization tokens: the cached keys/values of every token group so far
// plus the raw events not yet compressed, bounded whatever the number of
// events; without: the newest max_len events, recomputed per request. Created,
// appended to and (de)serialised through the Recommender that owns the model;
// a state of another model is refused. Not synchronised: one writer at a time.
class UserState {
 public:
  UserState();
  ~UserState();
  UserState(UserState&&) noexcept;
  UserState& operator=(UserState&&) noexcept;

  std::int64_t events() const;         // events appended so far
  std::int64_t held_events() const;    // raw events still held (what exclude_seen excludes)
  std::int64_t cached_tokens() const;  // personalization tokens compressed so far
  std::int64_t memory_bytes() const;

 private:
  friend class Recommender;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Recommender {
 public:
  // Loads and verifies a full bundle (refuses an items-only one); `threads`:
  // intra-op threads of this process (0 = leave as is).
  static std::unique_ptr<Recommender> load(const std::filesystem::path& bundle, int threads = 0);
  ~Recommender();

  std::int64_t num_items() const;  // the catalogue now, added items included
  std::int64_t dim() const;
  std::vector<std::int64_t> item_ids() const;  // raw ids of the catalogue, in table order (a copy: it grows)
  std::vector<float> item_vector(std::int64_t raw_id) const;  // an item's raw (not normalised) vector [D]
  std::int64_t max_history() const;  // events one recommend(history) reads (older ones are ignored)
  std::string describe() const;      // model descriptor and source checkpoint

  // history: raw item ids, oldest first; times: one per event (empty: 0, 1,
  // 2, ... as the ordinal-time datasets); request_time: the time of the event
  // to predict (-1: the last time + 1 for ordinal times, else the last time).
  // Throws DataError naming an unknown item or an empty history, and
  // ConfigError("k") unless 1 <= k <= the catalogue.
  std::vector<Recommendation> recommend(const std::vector<std::int64_t>& history, int k, bool exclude_seen = true,
                                        const std::vector<std::int64_t>& times = {},
                                        std::int64_t request_time = -1) const;
  std::vector<std::vector<Recommendation>> recommend_batch(const std::vector<std::vector<std::int64_t>>& histories,
                                                           int k, bool exclude_seen = true) const;
  // Cached state: `create_state` = an empty state + `append(history)`;
  // `append` adds events (times as for `recommend`: empty continues the
  // ordinal times 0, 1, 2, ...) and compresses what leaves the recent window.
  // Unknown ids throw DataError before the state changes. recommend(state)
  // equals recommend(history) for a history the model reads whole; exclude_seen
  // drops the events the state still holds raw (compressed ones are not kept).
  UserState create_state(const std::vector<std::int64_t>& history, const std::vector<std::int64_t>& times = {}) const;
  void append(UserState& state, const std::vector<std::int64_t>& items,
              const std::vector<std::int64_t>& times = {}) const;
  std::vector<Recommendation> recommend(const UserState& state, int k, bool exclude_seen = true,
                                        std::int64_t request_time = -1) const;
  std::vector<std::vector<Recommendation>> recommend_batch(const std::vector<const UserState*>& states, int k,
                                                           bool exclude_seen = true) const;
  std::vector<float> user_vector(const UserState& state, std::int64_t request_time = -1) const;
  // Bytes for the caller's own store; load refuses another model's state
  // (DataError naming what differs) and damaged bytes. A state holds internal
  // ids: one that holds added items reads back right only where the same
  // items were added in the same order.
  std::string serialize(const UserState& state) const;
  UserState deserialize(const std::string& bytes) const;

  // The L2-normalised user vector [D] the recommendations are scored with.
  std::vector<float> user_vector(const std::vector<std::int64_t>& history, const std::vector<std::int64_t>& times = {},
                                 std::int64_t request_time = -1) const;

  // New items (hllm bundles exported with the item LLM and its tokenizer).
  // Whether add_item can encode them; when not, why (the bundle is named).
  bool accepts_new_items() const;
  std::string new_items_refusal() const;
  // Tokenizes `text` with the bundle's tokenizer, composes it as training did
  // ([BOS] + hllm.prompt + text, truncated to hllm.max_text_len), encodes it
  // with the item LLM (no gradients, eval mode) and appends the item to the
  // catalogue (raw vector, normalised row, raw id, text as its title): it is
  // recommendable, and may appear in histories and states, from the next call
  // on. Returns its internal id (the catalogue's size once added). Throws
  // ItemRefused naming the id for an id already in the catalogue, a text
  // without tokens (empty or blank), or a bundle that cannot encode items.
  std::int64_t add_item(std::int64_t raw_id, const std::string& text);

 private:
  Recommender();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longrec::serve
