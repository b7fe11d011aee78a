// libFuzzer target: a Hugging Face config.json for the Llama blocks (LlamaConfig::from_hf_json:
// JSON, types, the keys refused by name, sizes and their bounds). Inputs starting with 'D' go to
// the size descriptor instead. A ConfigError is the expected refusal; anything else is a finding.
#include <cstdint>
#include <string>

#include "longrec/core/error.h"
#include "longrec/model/llama/llama_config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    if (!text.empty() && text[0] == 'D') {
      (void)longrec::model::llama::LlamaConfig::from_descriptor(text.substr(1));
    } else {
      (void)longrec::model::llama::LlamaConfig::from_hf_json(text);
    }
  } catch (const longrec::ConfigError&) {
  }
  return 0;
}
