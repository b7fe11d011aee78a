// libFuzzer target: a checkpoint's manifest.json (parse_manifest: JSON, types,
// ranges, step/epoch consistency, the file list, the manifest checksum). Half
// the inputs are sealed first (their manifest_checksum recomputed), so that
// mutations reach the checks behind the checksum. A DataError is the expected
// refusal; anything else is a finding.
#include <cstdint>
#include <string>

#include "longrec/ckpt/manifest.h"
#include "longrec/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    if (data[0] & 1) text = longrec::ckpt::seal_manifest(text);
    (void)longrec::ckpt::parse_manifest(text, "fuzz/manifest.json");
  } catch (const longrec::DataError&) {
  }
  return 0;
}
