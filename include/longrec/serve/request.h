// Reading untrusted JSON requests (HTTP bodies, `longrec recommend --input`
// lines) and user ids, without LibTorch: these functions are what the serving
// fuzz target and the sanitizer build exercise.
//
// Every refusal is a DataError whose message names the field (the HTTP server
// answers it as 400); nothing here recurses on the input's nesting depth, so a
// hostile body cannot overflow the stack.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace longrec::serve {

// The deepest nesting a request may have. Requests are two levels deep
// ({"history": [...]}); the bound only has to stop hostile bodies.
inline constexpr int kMaxRequestDepth = 16;

// A JSON object from text. DataError on malformed JSON (with the byte
// position), nesting deeper than kMaxRequestDepth, a number out of range
// (`{"k": 1e999}`: the key is named) or a top level that is not an object.
nlohmann::json parse_object(const std::string& text);

// request[key] as a list of integers; DataError naming the key and the first
// offending element. An absent key gives an empty list when allowed, else an error.
std::vector<std::int64_t> int_list(const nlohmann::json& request, const std::string& key, bool required);
// request[key] as an integer (absent: fallback); DataError naming the key.
std::int64_t int_field(const nlohmann::json& request, const std::string& key, std::int64_t fallback);
bool bool_field(const nlohmann::json& request, const std::string& key, bool fallback);

// A new item's request ({"id": raw id, "text": "..."}: POST /items, a line of
// `longrec recommend --new_items`): DataError naming "id" or "text" when one
// is missing or of another type. Whether the text says anything is the
// Recommender's check (Recommender::add_item).
struct NewItemRequest {
  std::int64_t id = 0;
  std::string text;
};
NewItemRequest new_item_request(const nlohmann::json& request);

// A user id as the server keys its states by: 1..max_bytes bytes of valid
// UTF-8 without control characters (NUL, newline, DEL, ...). DataError naming
// the offending byte otherwise.
void check_user_id(const std::string& id, std::int64_t max_bytes);

// A value quoted in an error message: at most `max_chars` characters, bytes
// that are not UTF-8 replaced. Iterative: safe on any parsed value.
std::string quote_value(const nlohmann::json& value, std::size_t max_chars = 80);

}  // namespace longrec::serve
