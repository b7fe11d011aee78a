#include "longrec/eval/protocol.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>

#include "longrec/core/config.h"
#include "longrec/core/error.h"

namespace longrec::eval {

std::vector<int> parse_cutoffs(const std::string& text, const std::string& key) {
  const auto refuse = [&](const std::string& why) {
    throw ConfigError(key, fmt::format("got '{}': {}; expected strictly increasing integers in [1, {}], "
                                       "comma-separated, e.g. 1,5,10,20,50,200",
                                       text, why, kMaxCutoff));
  };
  std::vector<int> out;
  std::size_t begin = 0;
  while (true) {
    const auto comma = text.find(',', begin);
    auto item = text.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin);
    const auto first = item.find_first_not_of(" \t");
    item = first == std::string::npos ? "" : item.substr(first, item.find_last_not_of(" \t") - first + 1);
    long long value = 0;
    const auto [end, error] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || error != std::errc() || end != item.data() + item.size()) {
      refuse(fmt::format("'{}' is not an integer", item));
    }
    if (value < 1 || value > kMaxCutoff) refuse(fmt::format("{} is out of range", value));
    if (!out.empty() && value <= out.back()) refuse(fmt::format("{} does not come after {}", value, out.back()));
    out.push_back(static_cast<int>(value));
    if (out.size() > kMaxCutoffs) refuse(fmt::format("more than {} cutoffs", kMaxCutoffs));
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
  return out;
}

HistoryExclusion parse_history_exclusion(const std::string& text, const std::string& key) {
  if (text == "all") return HistoryExclusion::All;
  if (text == "window") return HistoryExclusion::Window;
  if (text == "none") return HistoryExclusion::None;
  throw ConfigError(key, fmt::format("got '{}', expected all, window or none", text));
}

RepeatTarget parse_repeat_target(const std::string& text, const std::string& key) {
  if (text == "rank") return RepeatTarget::Rank;
  if (text == "miss") return RepeatTarget::Miss;
  if (text == "skip") return RepeatTarget::Skip;
  throw ConfigError(key, fmt::format("got '{}', expected rank, miss or skip", text));
}

std::string history_exclusion_name(HistoryExclusion value) {
  switch (value) {
    case HistoryExclusion::All:
      return "all";
    case HistoryExclusion::Window:
      return "window";
    case HistoryExclusion::None:
      return "none";
  }
  return "?";
}

std::string repeat_target_name(RepeatTarget value) {
  switch (value) {
    case RepeatTarget::Rank:
      return "rank";
    case RepeatTarget::Miss:
      return "miss";
    case RepeatTarget::Skip:
      return "skip";
  }
  return "?";
}

std::string describe(const RankingProtocol& p) {
  return fmt::format("exclude_history {}, target_in_history {}", history_exclusion_name(p.exclude_history),
                     repeat_target_name(p.target_in_history));
}

RankingProtocol ProtocolOptions::resolve() const {
  RankingProtocol p;
  p.cutoffs = parse_cutoffs(cutoffs);
  p.exclude_history = parse_history_exclusion(exclude_history);
  p.target_in_history = parse_repeat_target(target_in_history);
  return p;
}

void register_protocol_options(OptionRegistry& r, ProtocolOptions& o) {
  r.add("eval", "cutoffs", &o.cutoffs, "K of HR@K and NDCG@K, comma-separated, strictly increasing",
        check::Validator<std::string>([](const std::string& key, const std::string& v) { parse_cutoffs(v, key); }));
  r.add("eval", "exclude_history", &o.exclude_history,
        "earlier events that are not candidates: all (every one) | window (the model's input window, as the HSTU "
        "reference) | none",
        check::one_of({"all", "window", "none"}));
  r.add("eval", "target_in_history", &o.target_in_history,
        "a target among the excluded events: rank (ranked as usual) | miss (excluded too: scores 0, as the HSTU "
        "reference) | skip (user not scored)",
        check::one_of({"rank", "miss", "skip"}));
}

}  // namespace longrec::eval
