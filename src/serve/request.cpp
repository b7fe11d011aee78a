#include "longrec/serve/request.h"

#include <fmt/format.h>

#include "longrec/core/error.h"

namespace longrec::serve {

namespace {

using json = nlohmann::json;

// One pass over the text before it is turned into a json value: bounds the
// nesting depth and names where a number overflows. nlohmann's parser is
// iterative, but dumping or copying a deeply nested value is not, so depth is
// refused here, before any value exists.
class RequestShape final : public nlohmann::json_sax<json> {
 public:
  std::string error;  // empty while the text is acceptable

  bool null() override { return value(); }
  bool boolean(bool) override { return value(); }
  bool number_integer(number_integer_t) override { return value(); }
  bool number_unsigned(number_unsigned_t) override { return value(); }
  bool number_float(number_float_t, const string_t&) override { return value(); }
  bool string(string_t&) override { return value(); }
  bool binary(binary_t&) override { return value(); }
  bool key(string_t& key) override {
    frames_.back().key = key;
    return true;
  }
  bool start_object(std::size_t) override { return open(true); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool parse_error(std::size_t position, const std::string& last_token, const nlohmann::detail::exception& e) override {
    if (e.id == 406) {  // out_of_range: a number literal beyond double's range
      error = fmt::format("{}: the number {} is out of range (a finite number is expected)", where(),
                          last_token.substr(0, 40));
    } else {
      error = fmt::format("malformed JSON at byte {}: {}", position, e.what());
    }
    return false;
  }

 private:
  struct Frame {
    bool object = false;
    std::string key;        // object: the key of the value being read
    std::size_t index = 0;  // array: the index of the value being read
  };
  std::vector<Frame> frames_;

  // A scalar was read, or a container was opened: the next array element follows.
  bool value() {
    if (!frames_.empty() && !frames_.back().object) ++frames_.back().index;
    return true;
  }
  bool open(bool object) {
    if (static_cast<int>(frames_.size()) >= kMaxRequestDepth) {
      error = fmt::format("{}: JSON nested deeper than {} levels", where(), kMaxRequestDepth);
      return false;
    }
    frames_.push_back({object, {}, 0});
    return true;
  }
  bool close() {
    frames_.pop_back();
    return value();
  }
  // Where the value being read sits, e.g. "history"[3] ("the request" at the top).
  std::string where() const {
    if (frames_.empty()) return "the request";
    std::string path;
    for (const auto& f : frames_) {
      if (f.object) {
        path += fmt::format("{}\"{}\"", path.empty() ? "" : ".", f.key.substr(0, 64));
      } else {
        path += fmt::format("[{}]", f.index);
      }
    }
    return path;
  }
};

// A JSON integer that fits int64 (nlohmann keeps values above INT64_MAX unsigned).
bool is_int64(const json& v) {
  return v.is_number_integer() &&
         !(v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX));
}

}  // namespace

std::string quote_value(const json& value, std::size_t max_chars) {
  if (value.is_array()) return fmt::format("a list of {} values", value.size());
  if (value.is_object()) return fmt::format("an object of {} keys", value.size());
  auto text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > max_chars) text = text.substr(0, max_chars) + "...";
  return text;
}

namespace {

// Why `text` was refused: RequestShape's message (nesting with its path, a
// number out of range with its key, or the parser's error and byte).
std::string describe_refusal(const std::string& text) {
  RequestShape shape;
  json::sax_parse(text, &shape);
  return shape.error.empty() ? std::string("malformed JSON") : shape.error;
}

}  // namespace

json parse_object(const std::string& text) {
  // One parse in the common case; its callback stops nesting past the bound as
  // it opens, so no over-deep value is ever built. Only a refused text is
  // walked again, by RequestShape, to name where it went wrong.
  struct TooDeep {};
  const auto bound_depth = [](int depth, json::parse_event_t event, json&) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= kMaxRequestDepth) {
      throw TooDeep{};
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text, bound_depth);
  } catch (const TooDeep&) {
    throw DataError(describe_refusal(text));
  } catch (const json::exception&) {
    throw DataError(describe_refusal(text));
  }
  if (!j.is_object()) throw DataError(fmt::format("a JSON object is expected, got {}", j.type_name()));
  return j;
}

std::vector<std::int64_t> int_list(const json& request, const std::string& key, bool required) {
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
      throw DataError(fmt::format("\"{}\"[{}] must be an integer, got {}", key, i, quote_value(v)));
    }
    out.push_back(v.get<std::int64_t>());
  }
  return out;
}

std::int64_t int_field(const json& request, const std::string& key, std::int64_t fallback) {
  const auto it = request.find(key);
  if (it == request.end()) return fallback;
  if (!is_int64(*it)) throw DataError(fmt::format("\"{}\" must be an integer, got {}", key, quote_value(*it)));
  return it->get<std::int64_t>();
}

bool bool_field(const json& request, const std::string& key, bool fallback) {
  const auto it = request.find(key);
  if (it == request.end()) return fallback;
  if (!it->is_boolean()) throw DataError(fmt::format("\"{}\" must be true or false, got {}", key, quote_value(*it)));
  return it->get<bool>();
}

NewItemRequest new_item_request(const json& request) {
  NewItemRequest out;
  const auto id = request.find("id");
  if (id == request.end()) throw DataError("\"id\" is missing: the new item's raw id (an integer) is expected");
  if (!is_int64(*id)) throw DataError(fmt::format("\"id\" must be an integer, got {}", quote_value(*id)));
  out.id = id->get<std::int64_t>();
  const auto text = request.find("text");
  if (text == request.end()) throw DataError("\"text\" is missing: the new item's text (a string) is expected");
  if (!text->is_string()) {
    throw DataError(fmt::format("\"text\" must be a string, got {}", quote_value(*text)));
  }
  out.text = text->get<std::string>();
  return out;
}

void check_user_id(const std::string& id, std::int64_t max_bytes) {
  if (id.empty()) throw DataError("user id is empty");
  if (static_cast<std::int64_t>(id.size()) > max_bytes) {
    throw DataError(fmt::format("user id of {} bytes, at most {} allowed", id.size(), max_bytes));
  }
  for (std::size_t i = 0; i < id.size(); ++i) {
    const auto c = static_cast<unsigned char>(id[i]);
    if (c < 0x20 || c == 0x7f) {
      throw DataError(fmt::format("user id has a control character (byte 0x{:02x}) at offset {}", c, i));
    }
  }
  try {
    (void)json(id).dump();  // throws on bytes that are not UTF-8
  } catch (const json::type_error&) {
    throw DataError("user id is not valid UTF-8");
  }
}

}  // namespace longrec::serve
