// The JSON shapes of serving requests and answers, shared by `longrec
// recommend --input` (JSONL) and the HTTP server, so both accept and answer
// exactly the same objects.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "longrec/serve/recommender.h"

namespace longrec::serve {

// [{"item": raw id, "score": cosine, "title": ... (when the bundle has titles)}, ...]
nlohmann::json to_json(const std::vector<Recommendation>& recs);

// request[key] as a list of integers; DataError naming the key and the first
// offending element. An absent key gives `fallback` when allowed, else an error.
std::vector<std::int64_t> int_list(const nlohmann::json& request, const std::string& key, bool required);
// request[key] as an integer (absent: fallback); DataError naming the key.
std::int64_t int_field(const nlohmann::json& request, const std::string& key, std::int64_t fallback);
bool bool_field(const nlohmann::json& request, const std::string& key, bool fallback);
// {"history": [...], "k": N, "times": [...], "exclude_seen": bool, "request_time": t}
// -> {"items": [...]}; absent k / exclude_seen take the defaults. DataError
// naming the field on a bad request (k must be 1..the catalogue).
nlohmann::json answer_recommend(const Recommender& recommender, const nlohmann::json& request, int default_k,
                                bool default_exclude_seen);
// k from request[key] (absent: fallback), checked to be 1..the catalogue.
int checked_k(const Recommender& recommender, const nlohmann::json& request, const std::string& key, int fallback);

// A JSON object from text; DataError with the parser's position on malformed JSON.
nlohmann::json parse_object(const std::string& text);

}  // namespace longrec::serve
