// The item-token cache (issue 15): built once, reused while tokenizer and item
// texts match, rebuilt when either changed or the file is damaged.
#include "longrec/text/token_cache.h"

#include <gtest/gtest.h>

#include "longrec/core/error.h"
#include "longrec/data/history_store.h"
#include "support/test_support.h"

namespace longrec::text {
namespace {

using longrec::testing::ScratchDir;
using longrec::testing::write_file;

std::filesystem::path make_store(const std::filesystem::path& out, const std::vector<std::string>& texts) {
  data::HistoryStoreWriter writer(out, {.num_parts = 1, .overwrite = true});
  const std::vector<std::int32_t> items = {1, 2, 3};
  const std::vector<std::int64_t> times = {1, 2, 3};
  writer.add_user(7, items, times);
  writer.set_items({10, 20, 30}, {1, 1, 1}, texts);
  writer.commit(data::StoreMeta{});
  return out;
}

std::vector<std::string> corpus() {
  std::vector<std::string> texts;
  for (int i = 0; i < 300; ++i) {
    texts.push_back(fmt::format("Movie number {} café 東京 {} story of the {} night", i, i % 13, i % 7));
  }
  return texts;
}

TEST(TokenCache, BuiltReusedAndRebuiltWhenTokenizerOrTextsChange) {
  ScratchDir dir;
  const auto tok_a = train_tokenizer(corpus(), 300, dir / "a.model");
  TrainOptions bpe;
  bpe.model_type = "bpe";
  const auto tok_b = train_tokenizer(corpus(), 300, dir / "b.model", bpe);
  ASSERT_NE(tok_a.checksum(), tok_b.checksum());
  const std::vector<std::string> texts = {"Toy Story (1995)", "", "東京タワー 🙂"};
  const data::HistoryStoreReader store(make_store(dir / "store", texts));
  const auto cache = dir / "tokens.h5";

  const auto first = tokenize_item_texts(store, tok_a, cache);
  EXPECT_FALSE(first.reused);
  ASSERT_EQ(first.num_items(), 3);
  for (std::int64_t i = 1; i <= 3; ++i) {
    const auto ids = first.item(i);
    EXPECT_EQ(std::vector<std::int32_t>(ids.begin(), ids.end()), tok_a.encode(texts[static_cast<std::size_t>(i - 1)]));
  }
  EXPECT_TRUE(first.item(2).empty());

  const auto second = tokenize_item_texts(store, tok_a, cache);
  EXPECT_TRUE(second.reused);
  EXPECT_EQ(second.ids, first.ids);
  EXPECT_EQ(second.offsets, first.offsets);

  const auto other_tokenizer = tokenize_item_texts(store, tok_b, cache);
  EXPECT_FALSE(other_tokenizer.reused);
  EXPECT_EQ(other_tokenizer.rebuilt_because, "the tokenizer changed");
  EXPECT_EQ(other_tokenizer.item(3).size(), tok_b.encode(texts[2]).size());
  EXPECT_TRUE(tokenize_item_texts(store, tok_b, cache).reused);

  const data::HistoryStoreReader changed(
      make_store(dir / "store", {"Toy Story (1995)", "Heat", "東京タワー 🙂"}));
  const auto other_texts = tokenize_item_texts(changed, tok_b, cache);
  EXPECT_FALSE(other_texts.reused);
  EXPECT_EQ(other_texts.rebuilt_because, "the item texts changed");
  EXPECT_FALSE(other_texts.item(2).empty());

  write_file(cache, "garbage");
  const auto damaged = tokenize_item_texts(changed, tok_b, cache);
  EXPECT_FALSE(damaged.reused);
  EXPECT_NE(damaged.rebuilt_because.find("unreadable"), std::string::npos) << damaged.rebuilt_because;
  EXPECT_TRUE(tokenize_item_texts(changed, tok_b, cache).reused);
}

TEST(TokenCache, StoreWithoutTextIsNamed) {
  ScratchDir dir;
  const auto tok = train_tokenizer(corpus(), 300, dir / "a.model");
  const data::HistoryStoreReader store(make_store(dir / "plain", {}));
  try {
    tokenize_item_texts(store, tok, dir / "tokens.h5");
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("plain"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--items"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "tokens.h5"));
}

}  // namespace
}  // namespace longrec::text
