// `longrec synth`: synthetic users whose next item depends on events far back.
//
// Items are split into clusters with Zipf popularity inside each. A user has a
// few persistent long-term interests (clusters, with unequal weights, so some
// recur only rarely) and a short-term interest that drifts between
// neighbouring clusters. Each event is drawn from a long-term interest
// (long_term_prob), repeats an item from deep in the user's own history
// (repeat_prob), or follows the short-term drift. A model that sees only the
// recent window loses the rare interests and the deep repeats; one that sees
// the whole history (or a compressed form of it) does not.
//
// Item text (synth.item_text): each cluster has a topic vocabulary of
// pronounceable pseudo-words, and drift neighbours c and c+1 share a few of
// them, so that text similarity follows the drift structure. An item's text is
// "title: <2 item-specific words>, topic: <text_words words of its cluster>",
// each topic word replaced with probability text_noise by a word of another
// cluster: an item LLM reading the text can learn the item's cluster.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "longrec/data/history_store.h"

namespace longrec {
class OptionRegistry;
}

namespace longrec::data {

struct SynthConfig {
  std::string out;
  std::int64_t users = 10000;
  std::int64_t items = 5000;
  int clusters = 100;
  int interests = 4;               // long-term interests per user
  std::int64_t mean_length = 200;  // log-normal history lengths with this mean
  std::int64_t min_length = 5;
  std::int64_t max_length = 10000;
  double long_term_prob = 0.5;
  double repeat_prob = 0.1;
  double switch_prob = 0.1;  // short-term interest moves to a neighbouring cluster
  double zipf = 1.0;         // popularity exponent inside a cluster
  bool item_text = true;     // write each item's generated text to the store
  int text_words = 6;        // topic words per item text
  double text_noise = 0.2;   // probability a topic word comes from another cluster
  std::uint64_t seed = 1;
  int num_parts = 8;
  bool overwrite = false;
};

void register_synth_options(OptionRegistry& registry, SynthConfig& config);

struct SynthReport {
  StoreMeta meta;
  double seconds = 0;
};

// Generates users one at a time straight into a history store (streaming:
// memory does not grow with the number of events).
SynthReport generate_synthetic(const SynthConfig& config, bool show_progress = false);

// Words in each cluster's topic vocabulary, and how many of them cluster c
// shares with each drift neighbour (c - 1 and c + 1, modulo the clusters).
inline constexpr int kSynthTopicVocabulary = 12;
inline constexpr int kSynthSharedTopicWords = 3;

// The cluster (0..clusters-1) of dense item id `item` (1..items): cluster c
// holds the contiguous ids [1 + items * c / clusters, 1 + items * (c + 1) / clusters).
int synth_item_cluster(const SynthConfig& config, std::int64_t item);

// Cluster c's topic vocabulary: kSynthTopicVocabulary distinct lowercase ASCII
// words (three consonant-vowel syllables), from config.seed, config.clusters
// and c only. Words of different clusters are distinct except the
// kSynthSharedTopicWords each neighbour pair shares (while clusters <= 56,888;
// beyond, the word space wraps around and some words repeat).
std::vector<std::string> synth_topic_vocabulary(const SynthConfig& config, int cluster);

// The text of an item of cluster c, drawn from item_seed: "title: w w, topic:
// w ... w" (two-syllable title words, config.text_words topic words of c's
// vocabulary, each replaced with probability config.text_noise by a word of
// another cluster's). A new item of topic c gets its text from any fresh seed.
std::string synth_item_text(const SynthConfig& config, int cluster, std::uint64_t item_seed);

// The seed of dense item `item`'s text: the store's text of item i is
// synth_item_text(config, synth_item_cluster(config, i), synth_item_seed(config, i)).
std::uint64_t synth_item_seed(const SynthConfig& config, std::int64_t item);

}  // namespace longrec::data
