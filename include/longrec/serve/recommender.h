// The serving library (design section 7): a model loaded from a bundle that
// answers top-K for a history of raw item ids or a cached UserState.
// Torch-free interface (the implementation holds the model). Safe to call
// from many threads at once: the model is only read; a UserState is the
// caller's, and may be read by many threads but appended to by one at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace longrec::serve {

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

  std::int64_t num_items() const;
  std::int64_t dim() const;
  const std::vector<std::int64_t>& item_ids() const;  // raw ids of the catalogue, in table order
  std::int64_t max_history() const;                   // events one recommend(history) reads (older ones are ignored)
  std::string describe() const;                       // model descriptor and source checkpoint

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
  // (DataError naming what differs) and damaged bytes.
  std::string serialize(const UserState& state) const;
  UserState deserialize(const std::string& bytes) const;

  // The L2-normalised user vector [D] the recommendations are scored with.
  std::vector<float> user_vector(const std::vector<std::int64_t>& history, const std::vector<std::int64_t>& times = {},
                                 std::int64_t request_time = -1) const;

 private:
  Recommender();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longrec::serve
