#include "longrec/text/token_cache.h"

#include <unistd.h>

#include "longrec/core/atomic_file.h"
#include "longrec/core/checksum.h"
#include "longrec/core/error.h"
#include "longrec/data/h5.h"
#include "longrec/data/history_store.h"

namespace longrec::text {

namespace fs = std::filesystem;

std::span<const std::int32_t> ItemTokens::item(std::int64_t item) const {
  LONGREC_CHECK(item >= 1 && item <= num_items(), "item {} outside [1, {}]", item, num_items());
  const auto begin = offsets[static_cast<std::size_t>(item - 1)];
  const auto end = offsets[static_cast<std::size_t>(item)];
  return std::span<const std::int32_t>(ids).subspan(static_cast<std::size_t>(begin),
                                                    static_cast<std::size_t>(end - begin));
}

std::string texts_checksum(const std::vector<std::string>& texts) {
  Crc32 crc;
  for (const auto& t : texts) {
    const auto n = static_cast<std::uint64_t>(t.size());
    crc.update(&n, sizeof n);
    crc.update(t.data(), t.size());
  }
  return crc.hex();
}

namespace {

// The cache at `path` when it matches; otherwise the reason it does not.
std::string try_read(const fs::path& path, const std::string& tokenizer_checksum, const std::string& texts_sum,
                     std::int64_t num_items, std::int32_t vocab_size, ItemTokens& out) {
  try {
    const auto file = h5::File::open(path, "it is rebuilt");
    if (!file.has_attr("format") || file.read_attr_string("format") != kTokenCacheFormat) return "not a token cache";
    if (file.read_attr_int("version") != kTokenCacheVersion) return "another cache version";
    if (file.read_attr_string("tokenizer_checksum") != tokenizer_checksum) return "the tokenizer changed";
    if (file.read_attr_string("texts_checksum") != texts_sum) return "the item texts changed";
    if (file.read_attr_int("num_items") != num_items) return "the number of items changed";
    auto offsets = file.read<std::int64_t>("offsets");
    auto ids = file.read<std::int32_t>("ids");
    if (static_cast<std::int64_t>(offsets.size()) != num_items + 1 || offsets.front() != 0 ||
        offsets.back() != static_cast<std::int64_t>(ids.size())) {
      return "inconsistent offsets";
    }
    for (std::size_t i = 1; i < offsets.size(); ++i) {
      if (offsets[i] < offsets[i - 1]) return "inconsistent offsets";
    }
    for (const auto id : ids) {
      if (id < 0 || id >= vocab_size) return "token ids outside the vocabulary";
    }
    out.offsets = std::move(offsets);
    out.ids = std::move(ids);
    return {};
  } catch (const Error& e) {
    return std::string("unreadable: ") + e.what();
  }
}

}  // namespace

ItemTokens tokenize_item_texts(const data::HistoryStoreReader& store, const Tokenizer& tokenizer,
                               const fs::path& cache_path) {
  const auto texts = store.item_text();
  if (texts.empty()) {
    throw DataError(
        fmt::format("{}: the store has no item text to tokenize; add it with `longrec prepare --items FILE`",
                    store.directory().string()));
  }
  ItemTokens result;
  result.tokenizer_checksum = tokenizer.checksum();
  result.texts_checksum = texts_checksum(texts);
  const auto num_items = static_cast<std::int64_t>(texts.size());
  std::error_code ec;
  if (!cache_path.empty() && fs::exists(cache_path, ec)) {
    result.rebuilt_because = try_read(cache_path, result.tokenizer_checksum, result.texts_checksum, num_items,
                                      tokenizer.vocab_size(), result);
    if (result.rebuilt_because.empty()) {
      result.reused = true;
      return result;
    }
  }
  result.offsets.assign(1, 0);
  result.offsets.reserve(texts.size() + 1);
  for (const auto& t : texts) {
    const auto ids = tokenizer.encode(t);
    result.ids.insert(result.ids.end(), ids.begin(), ids.end());
    result.offsets.push_back(static_cast<std::int64_t>(result.ids.size()));
  }
  if (cache_path.empty()) return result;  // no cache asked for
  const fs::path dir = cache_path.has_parent_path() ? cache_path.parent_path() : fs::path(".");
  const fs::path tmp = dir / fmt::format(".{}.tmp-{}", cache_path.filename().string(), ::getpid());
  fs::remove(tmp, ec);
  try {
    auto file = h5::File::create(tmp, /*checksums=*/true);
    file.write_attr("format", std::string(kTokenCacheFormat));
    file.write_attr("version", kTokenCacheVersion);
    file.write_attr("tokenizer_checksum", result.tokenizer_checksum);
    file.write_attr("texts_checksum", result.texts_checksum);
    file.write_attr("num_items", num_items);
    file.write_attr("store", fs::absolute(store.directory()).string());
    file.write<std::int64_t>("offsets", result.offsets);
    file.write<std::int32_t>("ids", result.ids);
    file.close();
    fsync_path(tmp);
    fs::rename(tmp, cache_path);
    fsync_path(dir);
  } catch (...) {
    fs::remove(tmp, ec);
    rethrow_with_note(fmt::format("the token cache {} was not written", cache_path.string()));
  }
  return result;
}

}  // namespace longrec::text
