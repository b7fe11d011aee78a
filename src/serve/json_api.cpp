#include "longrec/serve/json_api.h"

#include <fmt/format.h>

#include "longrec/core/error.h"

namespace longrec::serve {

namespace {

// A JSON integer that fits int64 (nlohmann keeps values above INT64_MAX unsigned).
bool is_int64(const nlohmann::json& v) {
  return v.is_number_integer() &&
         !(v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX));
}

// A value quoted in an error message (bytes that are not UTF-8 replaced).
std::string show(const nlohmann::json& v) { return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

}  // namespace

nlohmann::json to_json(const std::vector<Recommendation>& recs) {
  auto items = nlohmann::json::array();
  for (const auto& r : recs) {
    nlohmann::json j{{"item", r.item}, {"score", r.score}};
    if (!r.title.empty()) j["title"] = r.title;
    items.push_back(std::move(j));
  }
  return items;
}

std::vector<std::int64_t> int_list(const nlohmann::json& request, const std::string& key, bool required) {
  const auto it = request.find(key);
  if (it == request.end()) {
    if (required) throw DataError(fmt::format("\"{}\" is missing: a list of integers is expected", key));
    return {};
  }
  if (!it->is_array()) throw DataError(fmt::format("\"{}\" must be a list of integers, got {}", key, it->type_name()));
  std::vector<std::int64_t> out;
  out.reserve(it->size());
  for (std::size_t i = 0; i < it->size(); ++i) {
    const auto& v = (*it)[i];
    if (!is_int64(v)) {
      throw DataError(fmt::format("\"{}\"[{}] must be an integer, got {}", key, i, show(v)));
    }
    out.push_back(v.get<std::int64_t>());
  }
  return out;
}

std::int64_t int_field(const nlohmann::json& request, const std::string& key, std::int64_t fallback) {
  const auto it = request.find(key);
  if (it == request.end()) return fallback;
  if (!is_int64(*it)) throw DataError(fmt::format("\"{}\" must be an integer, got {}", key, show(*it)));
  return it->get<std::int64_t>();
}

bool bool_field(const nlohmann::json& request, const std::string& key, bool fallback) {
  const auto it = request.find(key);
  if (it == request.end()) return fallback;
  if (!it->is_boolean()) throw DataError(fmt::format("\"{}\" must be true or false, got {}", key, show(*it)));
  return it->get<bool>();
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

nlohmann::json parse_object(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw DataError(fmt::format("malformed JSON at byte {}: {}", e.byte, e.what()));
  }
  if (!j.is_object()) throw DataError(fmt::format("a JSON object is expected, got {}", j.type_name()));
  return j;
}

}  // namespace longrec::serve
