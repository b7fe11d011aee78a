// The JSON shapes of serving requests and answers, shared by `longrec
// recommend --input` (JSONL) and the HTTP server, so both accept and answer
// exactly the same objects.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "longrec/serve/recommender.h"
#include "longrec/serve/request.h"

namespace longrec::serve {

// [{"item": raw id, "score": cosine, "title": ... (when the bundle has titles)}, ...]
nlohmann::json to_json(const std::vector<Recommendation>& recs);

// {"history": [...], "k": N, "times": [...], "exclude_seen": bool, "request_time": t}
// -> {"items": [...]}; absent k / exclude_seen take the defaults. DataError
// naming the field on a bad request (k must be 1..the catalogue).
nlohmann::json answer_recommend(const Recommender& recommender, const nlohmann::json& request, int default_k,
                                bool default_exclude_seen);
// k from request[key] (absent: fallback), checked to be 1..the catalogue.
int checked_k(const Recommender& recommender, const nlohmann::json& request, const std::string& key, int fallback);

}  // namespace longrec::serve
