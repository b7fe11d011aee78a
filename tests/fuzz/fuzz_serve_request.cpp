// libFuzzer target: what `longrec serve` and `longrec recommend --input` do
// with a request body before the model sees it: parse (bounded nesting,
// numbers in range), read the fields (a new item's too), check a user id. A DataError (answered
// as 400) is the expected refusal; anything else is a finding.
#include <cstdint>
#include <string>

#include "longrec/core/error.h"
#include "longrec/serve/request.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    longrec::serve::check_user_id(text.substr(0, 300), 256);
  } catch (const longrec::DataError&) {
  }
  try {
    const auto request = longrec::serve::parse_object(text);
    for (const char* key : {"history", "times", "items"}) {
      try {
        (void)longrec::serve::int_list(request, key, false);
      } catch (const longrec::DataError&) {
      }
    }
    for (const char* key : {"k", "request_time"}) {
      try {
        (void)longrec::serve::int_field(request, key, 10);
      } catch (const longrec::DataError&) {
      }
    }
    (void)longrec::serve::bool_field(request, "exclude_seen", true);
    try {
      (void)longrec::serve::new_item_request(request);  // POST /items, recommend --new_items
    } catch (const longrec::DataError&) {
    }
  } catch (const longrec::DataError&) {
  }
  return 0;
}
