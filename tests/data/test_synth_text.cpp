// The synthetic generator's item texts: topic words that follow the item
// clusters and their drift neighbours, deterministic per seed, in the store.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "longrec/core/config.h"
#include "longrec/data/dataset_stats.h"
#include "longrec/data/history_store.h"
#include "longrec/data/prepare.h"
#include "longrec/data/synth.h"
#include "support/config_args.h"
#include "support/test_support.h"

namespace longrec::data {

namespace {

SynthConfig small_config(const std::filesystem::path& out) {
  SynthConfig c;
  c.out = out.string();
  c.users = 60;
  c.items = 1000;
  c.clusters = 50;
  c.mean_length = 20;
  c.min_length = 5;
  c.max_length = 60;
  c.num_parts = 2;
  return c;
}

struct ParsedText {
  std::vector<std::string> title, topic;
};

// Splits "title: a b, topic: c d e" into its words; fails the test on any other shape.
ParsedText parse_text(const std::string& text) {
  ParsedText parsed;
  const auto comma = text.find(", topic: ");
  EXPECT_EQ(text.rfind("title: ", 0), 0u) << text;
  EXPECT_NE(comma, std::string::npos) << text;
  if (comma == std::string::npos) return parsed;
  std::istringstream title(text.substr(7, comma - 7)), topic(text.substr(comma + 9));
  for (std::string w; title >> w;) parsed.title.push_back(w);
  for (std::string w; topic >> w;) parsed.topic.push_back(w);
  return parsed;
}

bool lowercase_ascii(const std::string& word) {
  return !word.empty() && std::all_of(word.begin(), word.end(), [](char ch) { return ch >= 'a' && ch <= 'z'; });
}

std::set<std::string> word_set(const std::vector<std::string>& words) { return {words.begin(), words.end()}; }

double jaccard(const std::set<std::string>& a, const std::set<std::string>& b) {
  std::size_t common = 0;
  for (const auto& w : a) common += b.count(w);
  return static_cast<double>(common) / static_cast<double>(a.size() + b.size() - common);
}

std::vector<std::string> all_items_texts(const SynthConfig& c) {
  std::vector<std::string> texts;
  for (std::int64_t i = 1; i <= c.items; ++i) {
    texts.push_back(synth_item_text(c, synth_item_cluster(c, i), synth_item_seed(c, i)));
  }
  return texts;
}

}  // namespace

TEST(SynthText, ItemClusterIsTheContiguousIdRange) {
  for (const auto& [items, clusters] : std::vector<std::pair<std::int64_t, int>>{
           {10, 1}, {10, 3}, {10, 10}, {97, 7}, {1000, 50}, {5000, 100}, {12345, 678}}) {
    SynthConfig c;
    c.items = items;
    c.clusters = clusters;
    for (int k = 0; k < clusters; ++k) {
      for (auto i = 1 + items * k / clusters; i < 1 + items * (k + 1) / clusters; ++i) {
        ASSERT_EQ(synth_item_cluster(c, i), k) << "item " << i << " of " << items << ", " << clusters << " clusters";
      }
    }
  }
}

TEST(SynthText, TopicVocabularySharedWithDriftNeighboursOnly) {
  SynthConfig c;
  c.clusters = 20;
  std::vector<std::set<std::string>> vocabularies;
  for (int k = 0; k < c.clusters; ++k) {
    const auto words = synth_topic_vocabulary(c, k);
    ASSERT_EQ(words.size(), static_cast<std::size_t>(kSynthTopicVocabulary));
    for (const auto& w : words) {
      EXPECT_TRUE(lowercase_ascii(w)) << w;
      EXPECT_EQ(w.size(), 6u) << w;  // three consonant-vowel syllables
    }
    vocabularies.push_back(word_set(words));
    EXPECT_EQ(vocabularies.back().size(), static_cast<std::size_t>(kSynthTopicVocabulary)) << "cluster " << k;
    EXPECT_EQ(words, synth_topic_vocabulary(c, k));
  }
  for (int a = 0; a < c.clusters; ++a) {
    for (int b = a + 1; b < c.clusters; ++b) {
      std::size_t common = 0;
      for (const auto& w : vocabularies[a]) common += vocabularies[b].count(w);
      const bool neighbours = b == a + 1 || (a == 0 && b == c.clusters - 1);
      EXPECT_EQ(common, neighbours ? static_cast<std::size_t>(kSynthSharedTopicWords) : 0u)
          << "clusters " << a << ", " << b;
    }
  }
  SynthConfig other = c;
  other.seed = 2;
  EXPECT_NE(synth_topic_vocabulary(c, 3), synth_topic_vocabulary(other, 3));
  // One cluster alone: twelve distinct words of its own.
  SynthConfig one;
  one.clusters = 1;
  EXPECT_EQ(word_set(synth_topic_vocabulary(one, 0)).size(), static_cast<std::size_t>(kSynthTopicVocabulary));
}

TEST(SynthText, StoreHoldsEveryItemsTextDeterministicPerSeed) {
  testing::ScratchDir dir;
  auto c = small_config(dir / "a");
  generate_synthetic(c);
  c.out = (dir / "b").string();
  generate_synthetic(c);
  auto other = small_config(dir / "c");
  other.seed = 2;
  generate_synthetic(other);
  const HistoryStoreReader a(dir / "a"), b(dir / "b"), c_store(dir / "c");

  EXPECT_TRUE(a.meta().has_item_text);
  const auto texts = a.item_text();
  ASSERT_EQ(texts.size(), static_cast<std::size_t>(c.items));
  EXPECT_EQ(texts, b.item_text());
  EXPECT_EQ(texts, all_items_texts(c));  // what the public helpers give
  const auto other_texts = c_store.item_text();
  ASSERT_EQ(other_texts.size(), texts.size());
  std::size_t same = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) same += texts[i] == other_texts[i];
  EXPECT_EQ(same, 0u);
  EXPECT_NE(a.meta().source, c_store.meta().source);
  EXPECT_NE(a.meta().source.find("item_text=true,text_words=6,text_noise=0.2"), std::string::npos) << a.meta().source;

  std::set<std::string> titles;
  for (const auto& text : texts) {
    ASSERT_FALSE(text.empty());
    const auto parsed = parse_text(text);
    ASSERT_EQ(parsed.title.size(), 2u) << text;
    ASSERT_EQ(parsed.topic.size(), static_cast<std::size_t>(c.text_words)) << text;
    for (const auto& w : parsed.title) EXPECT_TRUE(lowercase_ascii(w) && w.size() == 4) << text;
    for (const auto& w : parsed.topic) EXPECT_TRUE(lowercase_ascii(w) && w.size() == 6) << text;
    titles.insert(parsed.title[0] + " " + parsed.title[1]);
  }
  EXPECT_GT(titles.size(), texts.size() * 9 / 10);  // item-specific titles

  // The text does not change the events; item_text=false writes none, and says so in the source.
  auto no_text = small_config(dir / "d");
  no_text.item_text = false;
  generate_synthetic(no_text);
  const HistoryStoreReader d(dir / "d");
  EXPECT_FALSE(d.meta().has_item_text);
  EXPECT_TRUE(d.item_text().empty());
  EXPECT_EQ(d.item_counts(), a.item_counts());
  EXPECT_NE(d.meta().source, a.meta().source);
  EXPECT_NE(d.meta().source.find("item_text=false"), std::string::npos) << d.meta().source;

  // A new item of cluster k from a fresh seed: k's topic, its own title.
  const auto fresh = parse_text(synth_item_text(c, 7, 0xF00Dull));
  EXPECT_EQ(fresh.topic.size(), static_cast<std::size_t>(c.text_words));
  EXPECT_EQ(synth_item_text(c, 7, 0xF00Dull), synth_item_text(c, 7, 0xF00Dull));
  EXPECT_NE(synth_item_text(c, 7, 0xF00Dull), synth_item_text(c, 7, 0xF00Eull));
}

TEST(SynthText, TopicWordsShowTheClusterAndItsDriftNeighbours) {
  SynthConfig c;
  c.items = 2000;
  c.clusters = 50;
  ASSERT_DOUBLE_EQ(c.text_noise, 0.2);
  const auto texts = all_items_texts(c);
  std::vector<std::set<std::string>> topics;
  std::vector<int> cluster;
  for (std::int64_t i = 1; i <= c.items; ++i) {
    topics.push_back(word_set(parse_text(texts[static_cast<std::size_t>(i - 1)]).topic));
    cluster.push_back(synth_item_cluster(c, i));
  }
  double within = 0, across = 0, neighbours = 0, far = 0;
  std::int64_t n_within = 0, n_across = 0, n_neighbours = 0, n_far = 0;
  for (std::size_t i = 0; i < topics.size(); ++i) {
    for (std::size_t j = i + 1; j < topics.size(); ++j) {
      const double s = jaccard(topics[i], topics[j]);
      const int gap = std::abs(cluster[i] - cluster[j]);
      if (gap == 0) {
        within += s, ++n_within;
        continue;
      }
      across += s, ++n_across;
      if (gap == 1 || gap == c.clusters - 1) {
        neighbours += s, ++n_neighbours;
      } else {
        far += s, ++n_far;
      }
    }
  }
  within /= static_cast<double>(n_within);
  across /= static_cast<double>(n_across);
  neighbours /= static_cast<double>(n_neighbours);
  far /= static_cast<double>(n_far);
  EXPECT_GT(within, 3 * across) << "within " << within << ", across " << across;
  EXPECT_GT(within, 0.2);
  // Text similarity follows the drift structure.
  EXPECT_GT(neighbours, 3 * far) << "neighbours " << neighbours << ", far " << far;
  EXPECT_GT(within, neighbours);
}

TEST(SynthText, WithoutNoiseEveryTopicWordIsOfTheItemsCluster) {
  SynthConfig c;
  c.items = 600;
  c.clusters = 30;
  for (const int words : {6, 20}) {  // 20: more words than the vocabulary holds
    c.text_words = words;
    c.text_noise = 0;
    for (std::int64_t i = 1; i <= c.items; ++i) {
      const int k = synth_item_cluster(c, i);
      const auto vocabulary = word_set(synth_topic_vocabulary(c, k));
      const auto topic = parse_text(synth_item_text(c, k, synth_item_seed(c, i))).topic;
      ASSERT_EQ(topic.size(), static_cast<std::size_t>(words));
      for (const auto& w : topic) ASSERT_EQ(vocabulary.count(w), 1u) << w << " of item " << i;
      // Distinct words while the vocabulary lasts.
      EXPECT_EQ(word_set(topic).size(), static_cast<std::size_t>(std::min(words, kSynthTopicVocabulary)));
    }
  }
  // With noise, some words come from other clusters.
  c.text_words = 6;
  c.text_noise = 0.5;
  std::int64_t outside = 0;
  for (std::int64_t i = 1; i <= c.items; ++i) {
    const int k = synth_item_cluster(c, i);
    const auto vocabulary = word_set(synth_topic_vocabulary(c, k));
    for (const auto& w : parse_text(synth_item_text(c, k, synth_item_seed(c, i))).topic)
      outside += !vocabulary.count(w);
  }
  EXPECT_GT(outside, c.items * 6 * 4 / 10);
  EXPECT_LT(outside, c.items * 6 * 6 / 10);
}

TEST(SynthText, BadTextKeysAreRefusedNamingTheKey) {
  const auto refusal = [](const std::vector<std::string>& args) {
    SynthConfig c;
    OptionRegistry r("synth", "test", "synth");
    register_synth_options(r, c);
    std::vector<std::string> all{"--out", "unused"};
    all.insert(all.end(), args.begin(), args.end());
    return testing::refusal_of([&] { testing::parse_args(r, "synth", all); });
  };
  EXPECT_EQ(refusal({"--text_words", "0"}).key, "synth.text_words");
  EXPECT_EQ(refusal({"--text_words", "65"}).key, "synth.text_words");
  EXPECT_EQ(refusal({"--text_noise", "nan"}).key, "synth.text_noise");
  EXPECT_EQ(refusal({"--text_noise", "1.5"}).key, "synth.text_noise");
  EXPECT_EQ(refusal({"--text_noise", "-0.1"}).key, "synth.text_noise");
  EXPECT_EQ(refusal({"--text_words", "64", "--text_noise", "1"}).key, "");

  SynthConfig c;
  OptionRegistry r("synth", "test", "synth");
  register_synth_options(r, c);
  EXPECT_TRUE(c.item_text);
  ASSERT_TRUE(testing::parse_args(r, "synth", {"--out", "x", "--synth.item_text=false", "--text_words=3"}));
  EXPECT_FALSE(c.item_text);
  EXPECT_EQ(c.text_words, 3);
}

// `longrec info` (statistics and --verify) and `longrec prepare` (the events as
// a seq file, the texts as an item file) on a synthetic store with texts.
TEST(SynthText, InfoAndPrepareReadTheSyntheticStore) {
  testing::ScratchDir dir;
  const auto c = small_config(dir / "synth");
  generate_synthetic(c);
  const HistoryStoreReader store(dir / "synth");
  const auto stats = compute_dataset_stats(store);
  EXPECT_NE(format_dataset_stats(stats, dir / "synth").find("item text        yes"), std::string::npos);
  const auto verified = verify_dataset(store);
  EXPECT_EQ(verified.problem, "");
  EXPECT_EQ(verified.events, store.meta().num_events);

  const auto raw_ids = store.item_raw_ids();
  const auto texts = store.item_text();
  std::string seq, items = "item_id,text\n";
  for (int p = 0; p < store.num_parts(); ++p) {
    const auto offsets = store.part_offsets(p);
    const auto users = store.part_user_ids(p);
    std::vector<std::int32_t> events(static_cast<std::size_t>(offsets.back()));
    std::vector<std::int64_t> times(events.size());
    store.read_events(p, 0, offsets.back(), events.data(), times.data());
    for (std::size_t u = 0; u < users.size(); ++u) {
      seq += std::to_string(users[u]);
      for (auto e = offsets[u]; e < offsets[u + 1]; ++e) {
        seq += ' ';  // (not `" " + std::to_string(...)`: a false -Wrestrict of GCC 12)
        seq += std::to_string(raw_ids[static_cast<std::size_t>(events[static_cast<std::size_t>(e)] - 1)]);
      }
      seq += "\n";
    }
  }
  for (std::size_t i = 0; i < raw_ids.size(); ++i) items += std::to_string(raw_ids[i]) + ",\"" + texts[i] + "\"\n";
  PrepareOptions options;
  options.input = testing::write_file(dir / "synth.seq.txt", seq);
  options.item_text = testing::write_file(dir / "items.csv", items);
  options.output = dir / "prepared";
  const auto report = prepare_dataset(options);
  EXPECT_EQ(report.meta.num_events, store.meta().num_events);
  EXPECT_EQ(report.items_without_text, 0);
  const HistoryStoreReader prepared(dir / "prepared");
  ASSERT_TRUE(prepared.meta().has_item_text);
  const auto prepared_ids = prepared.item_raw_ids();
  const auto prepared_texts = prepared.item_text();
  ASSERT_EQ(prepared_texts.size(), prepared_ids.size());
  for (std::size_t i = 0; i < prepared_ids.size(); ++i) {
    EXPECT_EQ(prepared_texts[i], texts[static_cast<std::size_t>(prepared_ids[i] - 1)]) << "raw id " << prepared_ids[i];
  }
}

}  // namespace longrec::data
