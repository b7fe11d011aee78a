// libFuzzer target: reading a serialised UserState (the byte layout checked
// torch-free before any tensor is made). The checksum is recomputed over the
// input first, so that mutations reach the fields behind it. A DataError is
// the expected refusal; anything else (a read past the end, an allocation the
// bytes cannot hold) is a finding.
#include <cstdint>
#include <cstring>
#include <string>

#include "longrec/core/checksum.h"
#include "longrec/core/error.h"
#include "longrec/model/user_state_format.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (bytes.size() >= 8 && (bytes[0] & 1) == 0) {  // half the inputs: checksum made valid
    longrec::Crc32 crc;
    crc.update(bytes.data(), bytes.size() - 4);
    const auto value = crc.value();
    std::memcpy(bytes.data() + bytes.size() - 4, &value, 4);
  }
  try {
    const auto record = longrec::model::read_user_state_record(bytes);
    // What was read writes back to the same bytes.
    if (longrec::model::write_user_state_record(record) != bytes) __builtin_trap();
  } catch (const longrec::DataError&) {
  }
  return 0;
}
