// libFuzzer target: a SentencePiece model file's bytes (Tokenizer::from_bytes:
// the ModelProto parsed and checked by libsentencepiece). An accepted model
// encodes a few texts (accents, CJK, emoji, empty) and decodes the ids back.
// A DataError is the expected refusal; anything else is a finding.
#include <cstdint>
#include <string>

#include "longrec/core/error.h"
#include "longrec/text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace longrec::text;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    const auto tokenizer = Tokenizer::from_bytes(std::move(bytes), "fuzz.model");
    for (const char* text : {"", "café crème", "東京タワー", "🙂👍", "  a  b  "}) {
      const auto ids = tokenizer.encode(text);
      (void)tokenizer.decode(ids);
    }
  } catch (const longrec::DataError&) {
    return 0;
  }
  return 0;
}
