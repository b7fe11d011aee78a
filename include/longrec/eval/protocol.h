// What an evaluation ranks and reports (the [eval] keys shared by `longrec
// eval` and the periodic evaluation of `longrec train`):
//
//   eval.cutoffs = 1,5,10,20,50,200   K of HR@K and NDCG@K (strictly increasing, 1..1000000, at most 32)
//   eval.exclude_history = all        which earlier events of the user are not candidates:
//       all     every event before the target (SASRec, S3Rec and this project's tables)
//       window  only the events of the model's input window, the newest data.max_len before the
//               target (the HSTU reference: it filters the ids it fed the model)
//       none    nothing: every item is a candidate
//   eval.target_in_history = rank     a target that is also among the excluded events (a repeat):
//       rank    it stays a candidate and is ranked as usual; only the other excluded items leave
//       miss    it is excluded with them, so the user scores 0 at every cutoff (rank = the larger
//               of the number of items and the largest cutoff; MRR 1 / (rank + 1)); the HSTU
//               reference, whose filter drops the target too (its rank: 2,501)
//       skip    the user is not scored (counted apart: "next new item" protocols)
//
// The defaults are what every earlier figure of this project used. With
// exclude_history = none nothing is excluded, so target_in_history has no
// effect. On ML-1M no user rates a movie twice: target_in_history changes
// nothing there. Torch-free.
#pragma once

#include <string>
#include <vector>

#include "longrec/eval/ranking_metrics.h"

namespace longrec {
class OptionRegistry;
}

namespace longrec::eval {

enum class HistoryExclusion { All, Window, None };
enum class RepeatTarget { Rank, Miss, Skip };

struct RankingProtocol {
  std::vector<int> cutoffs = default_cutoffs();
  HistoryExclusion exclude_history = HistoryExclusion::All;
  RepeatTarget target_in_history = RepeatTarget::Rank;
};

// The [eval] keys as text, as the option registry binds them; resolve() parses them.
struct ProtocolOptions {
  std::string cutoffs = "1,5,10,20,50,200";
  std::string exclude_history = "all";
  std::string target_in_history = "rank";
  // Throws ConfigError naming the key and the value.
  RankingProtocol resolve() const;
};

// "5,10,20" -> {5, 10, 20}; throws ConfigError(key) naming the value unless
// it is a comma-separated list of strictly increasing integers in
// [1, kMaxCutoff], at most kMaxCutoffs of them.
std::vector<int> parse_cutoffs(const std::string& text, const std::string& key = "eval.cutoffs");
HistoryExclusion parse_history_exclusion(const std::string& text, const std::string& key = "eval.exclude_history");
RepeatTarget parse_repeat_target(const std::string& text, const std::string& key = "eval.target_in_history");
std::string history_exclusion_name(HistoryExclusion value);
std::string repeat_target_name(RepeatTarget value);
// "exclude_history all, target_in_history rank": what a result line states.
std::string describe(const RankingProtocol& protocol);

// Registers eval.cutoffs, eval.exclude_history and eval.target_in_history,
// each checked when parsed.
void register_protocol_options(OptionRegistry& registry, ProtocolOptions& options);

}  // namespace longrec::eval
