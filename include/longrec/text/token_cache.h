// Item texts tokenized once and cached (issue 15).
//
// The cache is one HDF5 file (format "longrec-token-cache", version 1):
//   attributes format, version, tokenizer_checksum (Tokenizer::checksum()),
//              texts_checksum (CRC-32 of the store's item texts), num_items,
//              store (the dataset directory it was made from, informational);
//   /offsets [I+1] int64 (item with dense id i+1 has ids[offsets[i], offsets[i+1]))
//   /ids [N] int32 token ids, no BOS/EOS added.
// It is reused only when format, version and both checksums match (so a
// changed tokenizer or changed item texts rebuild it), and its offsets are
// checked; otherwise it is rebuilt and replaced atomically.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "longrec/text/tokenizer.h"

namespace longrec::data {
class HistoryStoreReader;
}

namespace longrec::text {

inline constexpr const char* kTokenCacheFormat = "longrec-token-cache";
inline constexpr std::int64_t kTokenCacheVersion = 1;

struct ItemTokens {
  std::vector<std::int64_t> offsets;  // [I+1]
  std::vector<std::int32_t> ids;
  std::string tokenizer_checksum;
  std::string texts_checksum;
  bool reused = false;          // read from an up-to-date cache
  std::string rebuilt_because;  // why an existing cache was not reused (empty when none existed or it was reused)

  std::int64_t num_items() const { return static_cast<std::int64_t>(offsets.empty() ? 0 : offsets.size() - 1); }
  // Token ids of dense item id `item` (1..I).
  std::span<const std::int32_t> item(std::int64_t item) const;
};

// "crc32:..." over the texts (each length-prefixed).
std::string texts_checksum(const std::vector<std::string>& texts);

// Tokens of every item text of `store` under `tokenizer`, from `cache_path`
// when it is up to date, else tokenized and written there (atomically; an
// empty path: tokenized, nothing written). A
// store without item text throws DataError naming the dataset.
ItemTokens tokenize_item_texts(const data::HistoryStoreReader& store, const Tokenizer& tokenizer,
                               const std::filesystem::path& cache_path);

}  // namespace longrec::text
