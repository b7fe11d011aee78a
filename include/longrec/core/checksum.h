// Content checksums recorded in dataset metadata and checkpoints.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace longrec {

// Incremental CRC-32 (zlib polynomial) over a byte stream.
class Crc32 {
 public:
  void update(const void* data, std::size_t size);
  std::uint32_t value() const { return crc_; }
  std::string hex() const;

 private:
  std::uint32_t crc_ = 0;
};

// "crc32:xxxxxxxx" of a whole file; throws SystemError naming the file.
std::string file_checksum(const std::filesystem::path& path);

}  // namespace longrec
