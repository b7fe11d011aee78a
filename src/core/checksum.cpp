#include "longrec/core/checksum.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "longrec/core/error.h"

namespace longrec {

void Crc32::update(const void* data, std::size_t size) {
  const auto* bytes = static_cast<const Bytef*>(data);
  while (size > 0) {
    const auto n = static_cast<uInt>(std::min<std::size_t>(size, 1u << 30));
    crc_ = static_cast<std::uint32_t>(crc32(crc_, bytes, n));
    bytes += n;
    size -= n;
  }
}

std::string Crc32::hex() const { return fmt::format("crc32:{:08x}", crc_); }

std::string file_checksum(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SystemError(fmt::format("{}: cannot open for reading: {}", path.string(), std::strerror(errno)));
  std::vector<char> buffer(1 << 20);
  Crc32 crc;
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    crc.update(buffer.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) throw SystemError(fmt::format("{}: read error", path.string()));
  return crc.hex();
}

}  // namespace longrec
