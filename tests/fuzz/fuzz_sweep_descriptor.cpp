// libFuzzer target: sweep descriptors (parse_sweep_descriptor, then
// expand_points on what it accepted). A ConfigError is the expected refusal;
// anything else (a crash, another exception, a sanitizer report) is a finding.
#include <cstdint>
#include <string>

#include "longrec/core/error.h"
#include "longrec/sweep/descriptor.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto descriptor = longrec::sweep::parse_sweep_descriptor(text, "fuzz/sweep.ini");
    (void)longrec::sweep::expand_points(descriptor);
  } catch (const longrec::ConfigError&) {
  }
  return 0;
}
