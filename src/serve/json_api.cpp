#include "longrec/serve/json_api.h"

#include <fmt/format.h>

#include "longrec/core/error.h"

namespace longrec::serve {

nlohmann::json to_json(const std::vector<Recommendation>& recs) {
  auto items = nlohmann::json::array();
  for (const auto& r : recs) {
    nlohmann::json j{{"item", r.item}, {"score", r.score}};
    if (!r.title.empty()) j["title"] = r.title;
    items.push_back(std::move(j));
  }
  return items;
}

int checked_k(const Recommender& recommender, const nlohmann::json& request, const std::string& key, int fallback) {
  const auto k = int_field(request, key, fallback);
  if (k < 1 || k > recommender.num_items()) {
    throw DataError(fmt::format("\"{}\" must be 1..{} (the catalogue), got {}", key, recommender.num_items(), k));
  }
  return static_cast<int>(k);
}

nlohmann::json answer_recommend(const Recommender& recommender, const nlohmann::json& request, int default_k,
                                bool default_exclude_seen) {
  const auto history = int_list(request, "history", true);
  const auto times = int_list(request, "times", false);
  const auto k = checked_k(recommender, request, "k", default_k);
  const auto exclude_seen = bool_field(request, "exclude_seen", default_exclude_seen);
  const auto request_time = int_field(request, "request_time", -1);
  return {{"items", to_json(recommender.recommend(history, k, exclude_seen, times, request_time))}};
}

}  // namespace longrec::serve
