// Personalization tokens (design section 4): where a history is cut into
// segments and how many learnable tokens follow each one. Torch-free, so
// config checks and the CLI see it without LibTorch.
//
// A history h_1..h_n is split into the old part (the first P = n - R events)
// and the recent window (the last R events; all n when n <= R). Group g
// covers history events [offset_{g-1}, offset_g) (offset_0 = 0) and is
// followed by its K_g tokens; the old part is cut at P, so the group holding
// event P may be partial. The interleaved sequence is
//   [s_1, T_1, ..., s_G, T_G, recent]
// and positions count tokens. Cutting from the oldest event keeps every
// complete group fixed as events arrive: a serving state compresses group g
// once n - R >= offset_g and never revisits it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longrec {
class OptionRegistry;
}

namespace longrec::model {

// Most tokens one group may have (personalization.tokens_per_group, and each K of personalization.groups).
constexpr int kMaxGroupTokens = 4096;

struct TokenGroupSpec {
  std::int64_t offset = 0;  // the group ends after this many history events (counted from the oldest)
  int tokens = 0;           // K_g
};

struct PersonalizationConfig {
  int segment_len = 0;         // S (0 and no explicit groups: personalization tokens off)
  int tokens_per_group = 4;    // K
  int recent_window = 128;     // R
  int max_groups = 16;         // cap on groups (token parameters exist for this many)
  std::string groups;          // explicit "offset:K,offset:K,..." (strictly increasing offsets); overrides S and K
  std::string path = "block";  // block (O(L (S + sum K))) | dense (masked O(L^2) reference)

  bool enabled() const { return segment_len > 0 || !groups.empty(); }
  // The groups token parameters exist for: the explicit list, or offsets S, 2S, ... max_groups of them.
  std::vector<TokenGroupSpec> group_specs() const;
  int total_tokens() const;  // sum of K_g over group_specs()
};

// Throws ConfigError naming the key when the layout cannot work: S < 1, K < 1,
// malformed or unordered groups, more groups than max_groups, R >= model_max_len.
void validate_personalization_config(const PersonalizationConfig& config, int model_max_len);

// One history's interleaved layout.
struct PersonalizationLayout {
  struct Group {
    std::int64_t begin = 0, end = 0;  // history events [begin, end)
    int tokens = 0;                   // K_g
    int first_token = 0;              // row of its first token in the token parameter table
    bool partial = false;             // cut at P before reaching its offset
  };
  std::int64_t events = 0;        // n
  std::int64_t recent_begin = 0;  // first event of the recent window (= P when there are groups)
  std::vector<Group> groups;

  std::int64_t length() const;  // n + sum K_g: slots of the interleaved sequence
};

// Throws DataError when the history needs more groups than the specs have
// (a history longer than the configuration allows).
PersonalizationLayout make_layout(const std::vector<TokenGroupSpec>& specs, int recent_window, std::int64_t events);

// The longest interleaved sequence a history of at most max_history events
// produces; what model.max_len must hold.
std::int64_t max_interleaved_length(const PersonalizationConfig& config, std::int64_t max_history);

// Throws ConfigError naming data.max_len when histories of that length cannot
// fit the model (position tables, HSTU normaliser) or need more token groups
// than configured.
void check_model_fits_history(int model_max_len, const PersonalizationConfig& config, std::int64_t max_history);

// The longest history that check_model_fits_history accepts (evaluation
// windows histories to it).
std::int64_t longest_history(int model_max_len, const PersonalizationConfig& config);

}  // namespace longrec::model
