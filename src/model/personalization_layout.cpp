#include "longrec/model/personalization_layout.h"

#include <charconv>

#include "longrec/core/config.h"
#include "longrec/core/error.h"

namespace longrec::model {

namespace {

std::vector<TokenGroupSpec> parse_groups(const std::string& text) {
  std::vector<TokenGroupSpec> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    const auto colon = item.find(':');
    TokenGroupSpec spec;
    const auto parse = [&](std::string_view digits, auto& value) {
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
      return ec == std::errc() && end == digits.data() + digits.size() && !digits.empty();
    };
    if (colon == std::string::npos || !parse(std::string_view(item).substr(0, colon), spec.offset) ||
        !parse(std::string_view(item).substr(colon + 1), spec.tokens)) {
      throw ConfigError("personalization.groups",
                        fmt::format("'{}' is not offset:tokens; expected e.g. 128:4,256:4,512:8", item));
    }
    if (spec.tokens < 1 || spec.tokens > kMaxGroupTokens) {
      throw ConfigError("personalization.groups",
                        fmt::format("group '{}' has {} tokens, expected 1 to {}", item, spec.tokens, kMaxGroupTokens));
    }
    const std::int64_t previous = out.empty() ? 0 : out.back().offset;
    if (spec.offset <= previous) {
      throw ConfigError("personalization.groups",
                        fmt::format("offset {} must be greater than the previous one ({}): groups are listed "
                                    "oldest first and hold at least one event",
                                    spec.offset, previous));
    }
    out.push_back(spec);
    start = comma + 1;
  }
  return out;
}

}  // namespace

std::vector<TokenGroupSpec> PersonalizationConfig::group_specs() const {
  if (!groups.empty()) return parse_groups(groups);
  std::vector<TokenGroupSpec> out;
  if (segment_len < 1) return out;
  for (int g = 1; g <= max_groups; ++g) out.push_back({static_cast<std::int64_t>(g) * segment_len, tokens_per_group});
  return out;
}

int PersonalizationConfig::total_tokens() const {
  int total = 0;
  for (const auto& spec : group_specs()) total += spec.tokens;
  return total;
}

void validate_personalization_config(const PersonalizationConfig& c, int model_max_len) {
  if (c.path != "block" && c.path != "dense") {
    throw ConfigError("personalization.path", fmt::format("got '{}', expected block or dense", c.path));
  }
  if (!c.enabled()) return;
  if (c.groups.empty() && c.segment_len < 1) {
    throw ConfigError("personalization.segment_len", fmt::format("got {}, expected >= 1", c.segment_len));
  }
  if (c.tokens_per_group < 1) {
    throw ConfigError("personalization.tokens_per_group", fmt::format("got {}, expected >= 1", c.tokens_per_group));
  }
  if (c.recent_window < 0 || c.recent_window >= model_max_len) {
    throw ConfigError("personalization.recent_window",
                      fmt::format("got {}, expected 0 <= R < model.max_len = {} (the recent window and its tokens "
                                  "must fit the model's positions)",
                                  c.recent_window, model_max_len));
  }
  const auto specs = c.group_specs();
  if (static_cast<int>(specs.size()) > c.max_groups) {
    throw ConfigError("personalization.groups", fmt::format("{} groups listed, more than personalization.max_groups "
                                                            "= {}",
                                                            specs.size(), c.max_groups));
  }
}

std::int64_t PersonalizationLayout::length() const {
  std::int64_t n = events;
  for (const auto& g : groups) n += g.tokens;
  return n;
}

PersonalizationLayout make_layout(const std::vector<TokenGroupSpec>& specs, int recent_window, std::int64_t events) {
  PersonalizationLayout layout;
  layout.events = events;
  const std::int64_t old_part = std::max<std::int64_t>(0, events - recent_window);
  std::int64_t begin = 0;
  int first_token = 0;
  for (const auto& spec : specs) {
    if (begin >= old_part) break;
    const auto end = std::min(spec.offset, old_part);
    layout.groups.push_back({begin, end, spec.tokens, first_token, end < spec.offset});
    first_token += spec.tokens;
    begin = end;
  }
  if (begin < old_part) {
    throw DataError(
        fmt::format("a history of {} events needs more than the {} configured token groups (the last "
                    "ends after event {}, the recent window of {} starts at {}); raise "
                    "personalization.max_groups or shorten data.max_len",
                    events, specs.size(), specs.empty() ? 0 : specs.back().offset, recent_window, old_part));
  }
  layout.recent_begin = old_part;
  return layout;
}

std::int64_t max_interleaved_length(const PersonalizationConfig& config, std::int64_t max_history) {
  if (!config.enabled()) return max_history;
  // n + sum K_g over the groups in use never decreases with n.
  return make_layout(config.group_specs(), config.recent_window, max_history).length();
}

void check_model_fits_history(int model_max_len, const PersonalizationConfig& config, std::int64_t max_history) {
  if (config.enabled()) {
    const auto specs = config.group_specs();
    const std::int64_t covered = specs.empty() ? 0 : specs.back().offset;
    if (max_history - config.recent_window > covered) {
      throw ConfigError(
          "data.max_len",
          fmt::format("histories of {} events need {} old events in token groups, but the {} groups "
                      "configured cover {} (personalization.max_groups = {}); raise max_groups or "
                      "segment_len, or lower data.max_len",
                      max_history, max_history - config.recent_window, specs.size(), covered, config.max_groups));
    }
  }
  const auto needed = max_interleaved_length(config, max_history);
  if (needed > model_max_len) {
    throw ConfigError("data.max_len",
                      fmt::format("histories of {} events make sequences of {} positions{}, more than model.max_len "
                                  "= {} (the position tables and HSTU's normaliser); raise model.max_len or lower "
                                  "data.max_len",
                                  max_history, needed, config.enabled() ? " (tokens included)" : "", model_max_len));
  }
}

std::int64_t longest_history(int model_max_len, const PersonalizationConfig& config) {
  if (!config.enabled()) return model_max_len;
  const auto specs = config.group_specs();
  const std::int64_t covered = (specs.empty() ? 0 : specs.back().offset) + config.recent_window;
  // The interleaved length grows with n; step down from the group limit.
  for (std::int64_t n = std::min<std::int64_t>(covered, model_max_len); n > 0; --n) {
    if (make_layout(specs, config.recent_window, n).length() <= model_max_len) return n;
  }
  return 0;
}

}  // namespace longrec::model
