#include "longrec/data/synth.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <numeric>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "longrec/core/config.h"
#include "longrec/core/error.h"
#include "longrec/core/log.h"
#include "longrec/core/rng.h"

namespace longrec::data {

void register_synth_options(OptionRegistry& r, SynthConfig& c) {
  r.add("synth", "out", &c.out, "output dataset directory (required)");
  r.add("synth", "users", &c.users, "number of users", check::in_range<std::int64_t>(1, 10'000'000'000));
  r.add("synth", "items", &c.items, "number of items", check::in_range<std::int64_t>(2, 100'000'000));
  r.add("synth", "clusters", &c.clusters, "item clusters (interests)", check::in_range(1, 1 << 24));
  r.add("synth", "interests", &c.interests, "long-term interests per user", check::in_range(1, 1024));
  r.add("synth", "mean_length", &c.mean_length, "mean history length (log-normal)",
        check::in_range<std::int64_t>(2, 1 << 30));
  r.add("synth", "min_length", &c.min_length, "shortest history", check::in_range<std::int64_t>(2, 1 << 30));
  r.add("synth", "max_length", &c.max_length, "longest history", check::in_range<std::int64_t>(2, 1 << 30));
  r.add("synth", "long_term_prob", &c.long_term_prob, "probability an event comes from a long-term interest",
        check::in_range(0.0, 1.0));
  r.add("synth", "repeat_prob", &c.repeat_prob, "probability an event repeats an old item of the user",
        check::in_range(0.0, 1.0));
  r.add("synth", "switch_prob", &c.switch_prob, "probability the short-term interest drifts per event",
        check::in_range(0.0, 1.0));
  r.add("synth", "zipf", &c.zipf, "Zipf exponent of item popularity inside a cluster", check::in_range(0.0, 4.0));
  r.flag("synth", "item_text", &c.item_text,
         "write each item's generated text (title words + topic words of its cluster) to the store");
  r.add("synth", "text_words", &c.text_words, "topic words per item text", check::in_range(1, 64));
  r.add("synth", "text_noise", &c.text_noise,
        "probability that each topic word of an item text is a word of a random other cluster",
        check::in_range(0.0, 1.0));
  r.add("synth", "seed", &c.seed, "random seed");
  r.add("synth", "num_parts", &c.num_parts, "store part files", check::in_range(1, 4096));
  r.flag("synth", "overwrite", &c.overwrite, "replace a non-empty output directory");
  r.constraint([&c] {
    if (c.out.empty()) throw ConfigError("synth.out", "an output directory is required");
    if (c.min_length > c.max_length) {
      throw ConfigError("synth.min_length",
                        fmt::format("{} is above synth.max_length = {}", c.min_length, c.max_length));
    }
    if (c.long_term_prob + c.repeat_prob > 1.0) {
      throw ConfigError("synth.repeat_prob", "long_term_prob + repeat_prob must not exceed 1");
    }
    if (c.clusters > c.items) {
      throw ConfigError("synth.clusters", fmt::format("{} clusters for {} items: expected at most one cluster per item",
                                                      c.clusters, c.items));
    }
  });
}

namespace {

// Stream tags of derive_seed(config.seed, tag, ...).
constexpr std::uint64_t kUserStream = 0x5E17ull;
constexpr std::uint64_t kTopicWordStream = 0x70B1Cull;
constexpr std::uint64_t kItemTextStream = 0x7E47ull;

// First dense id of cluster c (c = clusters gives items + 1).
std::int64_t first_item_of_cluster(std::int64_t items, int clusters, int c) { return 1 + items * c / clusters; }

// Items of cluster c are the dense ids [first[c], first[c+1]); within a
// cluster, item rank r has probability proportional to 1 / (r+1)^zipf.
class ClusteredCatalogue {
 public:
  ClusteredCatalogue(std::int64_t items, int clusters, double zipf) : first_(clusters + 1) {
    for (int c = 0; c <= clusters; ++c) first_[c] = first_item_of_cluster(items, clusters, c);
    cdf_.resize(static_cast<std::size_t>(items));
    for (int c = 0; c < clusters; ++c) {
      double total = 0;
      for (auto i = first_[c]; i < first_[c + 1]; ++i) {
        total += 1.0 / std::pow(static_cast<double>(i - first_[c] + 1), zipf);
        cdf_[static_cast<std::size_t>(i - 1)] = total;
      }
      for (auto i = first_[c]; i < first_[c + 1]; ++i) cdf_[static_cast<std::size_t>(i - 1)] /= total;
    }
  }
  int clusters() const { return static_cast<int>(first_.size()) - 1; }
  std::int32_t sample(int cluster, Rng& rng) const {
    const double u = rng.uniform_real();
    const auto begin = cdf_.begin() + (first_[cluster] - 1), end = cdf_.begin() + (first_[cluster + 1] - 1);
    const auto it = std::upper_bound(begin, end, u);
    return static_cast<std::int32_t>(std::min(it, end - 1) - cdf_.begin() + 1);
  }

 private:
  std::vector<std::int64_t> first_;
  std::vector<double> cdf_;
};

// Pseudo-words: consonant-vowel syllables, 16 x 5 of them. Topic words have
// three syllables, title words two, so a title word is never a topic word.
constexpr std::string_view kOnsets = "bdfghjklmnprstvz";
constexpr std::string_view kVowels = "aeiou";
constexpr std::uint64_t kSyllables = 16 * 5;
constexpr std::uint64_t kTopicWordSpace = kSyllables * kSyllables * kSyllables;  // 512,000
constexpr int kOwnTopicWords = kSynthTopicVocabulary - kSynthSharedTopicWords;
static_assert(kOnsets.size() * kVowels.size() == kSyllables);

void append_word(std::string& out, std::uint64_t number, int syllables) {
  for (int s = 0; s < syllables; ++s, number /= kSyllables) {
    out += kOnsets[number % kSyllables / kVowels.size()];
    out += kVowels[number % kSyllables % kVowels.size()];
  }
}

// A keyed permutation of [0, kTopicWordSpace): a 4-round Feistel network on
// 20 bits, cycle-walked back into the range. Distinct word numbers give
// distinct words, which still look random.
std::uint64_t permute_word_number(std::uint64_t key, std::uint64_t x) {
  constexpr std::uint64_t kHalf = 1u << 10;
  static_assert(kHalf * kHalf >= kTopicWordSpace);
  do {
    std::uint64_t left = x / kHalf, right = x % kHalf;
    for (std::uint64_t round = 0; round < 4; ++round) {
      left = std::exchange(right, left ^ (derive_seed(key, round, right) % kHalf));
    }
    x = left * kHalf + right;
  } while (x >= kTopicWordSpace);
  return x;
}

// The topic words cluster c owns are the word numbers c * kOwnTopicWords + j.
// Its vocabulary is its own words 0..kOwnTopicWords-1 and the first
// kSynthSharedTopicWords own words of cluster c+1, so that neighbours c, c+1
// share kSynthSharedTopicWords words (one cluster alone owns all of its words).
class TopicWords {
 public:
  explicit TopicWords(const SynthConfig& config)
      : key_(derive_seed(config.seed, kTopicWordStream)), clusters_(config.clusters) {}

  void append(std::string& out, int cluster, int slot) const {
    if (clusters_ > 1 && slot >= kOwnTopicWords) {
      cluster = (cluster + 1) % clusters_;
      slot -= kOwnTopicWords;
    }
    const auto number =
        (static_cast<std::uint64_t>(cluster) * kOwnTopicWords + static_cast<std::uint64_t>(slot)) % kTopicWordSpace;
    append_word(out, permute_word_number(key_, number), 3);
  }

 private:
  std::uint64_t key_;
  int clusters_;
};

}  // namespace

int synth_item_cluster(const SynthConfig& config, std::int64_t item) {
  LONGREC_CHECK(item >= 1 && item <= config.items, "item {} outside 1..{}", item, config.items);
  // The largest c with first_item_of_cluster(c) <= item: ceil(item * clusters / items) - 1.
  return static_cast<int>((item * config.clusters + config.items - 1) / config.items - 1);
}

std::vector<std::string> synth_topic_vocabulary(const SynthConfig& config, int cluster) {
  LONGREC_CHECK(cluster >= 0 && cluster < config.clusters, "cluster {} outside 0..{}", cluster, config.clusters - 1);
  const TopicWords words(config);
  std::vector<std::string> vocabulary(kSynthTopicVocabulary);
  for (int slot = 0; slot < kSynthTopicVocabulary; ++slot) words.append(vocabulary[slot], cluster, slot);
  return vocabulary;
}

std::uint64_t synth_item_seed(const SynthConfig& config, std::int64_t item) {
  return derive_seed(config.seed, kItemTextStream, item);
}

std::string synth_item_text(const SynthConfig& config, int cluster, std::uint64_t item_seed) {
  LONGREC_CHECK(cluster >= 0 && cluster < config.clusters, "cluster {} outside 0..{}", cluster, config.clusters - 1);
  const TopicWords words(config);
  Rng rng(item_seed);
  std::string text = "title:";
  for (int w = 0; w < 2; ++w) {
    text += ' ';
    append_word(text, rng.uniform(kSyllables * kSyllables), 2);
  }
  text += ", topic:";
  // Distinct words of the vocabulary while text_words allows (a fresh shuffle per kSynthTopicVocabulary words).
  std::array<int, kSynthTopicVocabulary> order{};
  for (int w = 0; w < config.text_words; ++w) {
    if (w % kSynthTopicVocabulary == 0) {
      std::iota(order.begin(), order.end(), 0);
      rng.shuffle(std::span<int>(order));
    }
    int source = cluster, slot = order[static_cast<std::size_t>(w % kSynthTopicVocabulary)];
    if (rng.uniform_real() < config.text_noise && config.clusters > 1) {
      source = static_cast<int>(rng.uniform(static_cast<std::uint64_t>(config.clusters - 1)));
      if (source >= cluster) ++source;
      slot = static_cast<int>(rng.uniform(static_cast<std::uint64_t>(kSynthTopicVocabulary)));
    }
    text += ' ';
    words.append(text, source, slot);
  }
  return text;
}

SynthReport generate_synthetic(const SynthConfig& config, bool show_progress) {
  const auto start = std::chrono::steady_clock::now();
  const ClusteredCatalogue catalogue(config.items, config.clusters, config.zipf);
  HistoryStoreWriter writer(config.out, {config.num_parts, config.overwrite, false});

  // Log-normal lengths with the requested mean: sigma 1, mu = ln(mean) - 1/2.
  const double sigma = 1.0, mu = std::log(static_cast<double>(config.mean_length)) - 0.5 * sigma * sigma;
  std::vector<std::int64_t> counts(static_cast<std::size_t>(config.items), 0);
  std::vector<std::int32_t> items;
  std::vector<std::int64_t> times;
  std::vector<int> interests(static_cast<std::size_t>(config.interests));
  std::vector<double> interest_cdf(interests.size());
  log::ProgressBar progress("synth", config.users);

  for (std::int64_t user = 1; user <= config.users; ++user) {
    Rng rng(derive_seed(config.seed, kUserStream, user));
    // Box-Muller for the log-normal length.
    const double z = std::sqrt(-2.0 * std::log(1.0 - rng.uniform_real())) * std::cos(2 * M_PI * rng.uniform_real());
    const auto length = std::clamp<std::int64_t>(static_cast<std::int64_t>(std::exp(mu + sigma * z)), config.min_length,
                                                 config.max_length);
    // Interest weights ~ 1/k^2 after a random draw: the last ones are rare.
    double total = 0;
    for (std::size_t k = 0; k < interests.size(); ++k) {
      interests[k] = static_cast<int>(rng.uniform(static_cast<std::uint64_t>(catalogue.clusters())));
      total += 1.0 / static_cast<double>((k + 1) * (k + 1));
      interest_cdf[k] = total;
    }
    for (auto& v : interest_cdf) v /= total;
    int drift = static_cast<int>(rng.uniform(static_cast<std::uint64_t>(catalogue.clusters())));
    std::int64_t time = 1'600'000'000 + static_cast<std::int64_t>(rng.uniform(30'000'000));

    items.resize(static_cast<std::size_t>(length));
    times.resize(items.size());
    for (std::int64_t t = 0; t < length; ++t) {
      const double u = rng.uniform_real();
      std::int32_t item;
      if (u < config.long_term_prob) {
        const double v = rng.uniform_real();
        const auto k = std::min<std::size_t>(
            interests.size() - 1,
            static_cast<std::size_t>(std::upper_bound(interest_cdf.begin(), interest_cdf.end(), v) -
                                     interest_cdf.begin()));
        item = catalogue.sample(interests[k], rng);
      } else if (u < config.long_term_prob + config.repeat_prob && t >= 2) {
        // Repeat from the older half of the history so far: a long-range dependency.
        item = items[static_cast<std::size_t>(rng.uniform(static_cast<std::uint64_t>(t / 2 + 1)))];
      } else {
        if (rng.uniform_real() < config.switch_prob) {
          const int step = rng.uniform(2) == 0 ? -1 : 1;
          drift = (drift + step + catalogue.clusters()) % catalogue.clusters();
        }
        item = catalogue.sample(drift, rng);
      }
      items[static_cast<std::size_t>(t)] = item;
      // Sessions: short gaps (minutes) with an occasional long pause (days).
      time += rng.uniform_real() < 0.05 ? 86'400 + static_cast<std::int64_t>(rng.uniform(5 * 86'400))
                                        : 30 + static_cast<std::int64_t>(rng.uniform(600));
      times[static_cast<std::size_t>(t)] = time;
      ++counts[static_cast<std::size_t>(item - 1)];
    }
    writer.add_user(user, items, times);
    if (show_progress) progress.update(user);
  }
  progress.finish();

  std::vector<std::int64_t> raw_ids(static_cast<std::size_t>(config.items));
  for (std::size_t i = 0; i < raw_ids.size(); ++i) raw_ids[i] = static_cast<std::int64_t>(i + 1);
  std::vector<std::string> texts;
  if (config.item_text) {
    texts.resize(raw_ids.size());
    for (std::int64_t item = 1; item <= config.items; ++item) {
      texts[static_cast<std::size_t>(item - 1)] =
          synth_item_text(config, synth_item_cluster(config, item), synth_item_seed(config, item));
    }
  }
  writer.set_items(std::move(raw_ids), std::move(counts), std::move(texts));
  StoreMeta description;
  description.item_order = "first";
  description.time_is_ordinal = false;
  description.source = fmt::format(
      "synth:users={},items={},clusters={},interests={},mean_length={},min_length={},max_length={},"
      "long_term_prob={},repeat_prob={},switch_prob={},zipf={},item_text={},text_words={},text_noise={},seed={}",
      config.users, config.items, config.clusters, config.interests, config.mean_length, config.min_length,
      config.max_length, config.long_term_prob, config.repeat_prob, config.switch_prob, config.zipf, config.item_text,
      config.text_words, config.text_noise, config.seed);
  description.source_checksum = "";
  SynthReport report;
  report.meta = writer.commit(description);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace longrec::data
