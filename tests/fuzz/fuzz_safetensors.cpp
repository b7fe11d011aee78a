// libFuzzer target: a safetensors file's bytes (parse_safetensors_header:
// header length, JSON, dtypes, shapes, offsets covering the data section). An
// accepted file has every tensor's bytes read, is written again by
// write_safetensors and must parse to the same tensors. A DataError is the
// expected refusal; anything else is a finding.
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "longrec/core/error.h"
#include "longrec/model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace longrec::model;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  SafetensorsHeader header;
  try {
    header = parse_safetensors_header(bytes, "fuzz.safetensors");
  } catch (const longrec::DataError&) {
    return 0;
  }
  std::vector<SafetensorsTensorData> tensors;
  std::uint64_t sum = 0;
  for (const auto& tensor : header.tensors) {
    const std::string_view view = header.bytes_of(bytes, tensor);
    for (const char c : view) sum += static_cast<unsigned char>(c);
    tensors.push_back({tensor.name, tensor.dtype, tensor.shape, view});
  }
  std::ostringstream out;
  write_safetensors(out, tensors, header.metadata);
  const SafetensorsHeader again = parse_safetensors_header(out.str(), "fuzz-rewritten.safetensors");
  if (again.tensors.size() != header.tensors.size() || again.metadata != header.metadata) std::abort();
  for (const auto& tensor : header.tensors) {
    const SafetensorsTensor* copy = again.find(tensor.name);
    if (copy == nullptr || copy->dtype != tensor.dtype || copy->shape != tensor.shape ||
        again.bytes_of(out.str(), *copy) != header.bytes_of(bytes, tensor)) {
      std::abort();
    }
  }
  static volatile std::uint64_t sink = 0;  // keeps the reads
  sink = sink + sum;
  return 0;
}
