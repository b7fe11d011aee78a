// `longrec prepare`: raw interaction log (+ optional item text) -> history store.
//
// Each user's events are sorted by (time, original order); raw item ids get
// dense ids 1..I by first appearance or by frequency (and, when asked, the
// item file's items without events after them); optional filters (min events
// per user / item, k-core) drop data and say how much and why.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "longrec/data/history_store.h"
#include "longrec/data/raw_reader.h"

namespace longrec::data {

struct PrepareOptions {
  std::filesystem::path input;
  std::filesystem::path item_text;  // optional
  std::filesystem::path output;
  RawReadOptions read;
  std::string text_encoding = "auto";
  // Item text from these fields of the item file, in this order (empty: all,
  // in file order), written "plain" (values joined by " | ") or "key_value"
  // (HLLM's "title: ..., genres: ..."); see compose_item_texts.
  std::vector<std::string> text_fields;
  std::string text_style = "plain";
  std::string item_order = "first";  // "first" appearance or "frequency"
  int min_user_events = 1;
  int min_item_events = 1;
  int k_core = 0;  // > 0: repeat both filters with this minimum until nothing changes
  // Every item of item_text that has no event in the input gets an id too
  // (after the rated ones, in the item file's order; count 0), so that
  // evaluation ranks it and training draws it as a negative: the HSTU
  // reference ranks all 3,883 movies of ML-1M's movies.dat, 177 of them never
  // rated. Items whose events the filters removed stay out. Needs item_text.
  bool keep_unrated_items = false;
  int num_parts = 8;
  bool overwrite = false;
  // Progress of reading (input bytes) and writing (events): a bar on a
  // terminal, else a log line per tenth (log::ProgressOptions::log_lines).
  bool show_progress = false;
};

// What one filter removed, summed over k-core rounds. `users` / `items`: the
// ids that lost their last event to this filter, whether it removed them
// directly (min_user_events: users with too few events) or as a knock-on
// (min_user_events: items whose every remaining event was by such users).
// Over all filters each removed user and item counts once: the sums are the
// raw counts minus what the store keeps.
struct FilterDrop {
  std::string filter;  // "min_item_events" (runs first) | "min_user_events"
  int minimum = 0;     // the effective minimum: max(the key, k_core)
  std::int64_t events = 0, users = 0, items = 0;
};

struct PrepareReport {
  StoreMeta meta;
  std::string format;
  std::string format_guess;  // what the guessed format rests on; empty when --format was given
  std::int64_t lines = 0, bad_lines = 0;
  std::vector<std::string> bad_line_examples;
  std::int64_t raw_users = 0, raw_items = 0, raw_events = 0;
  std::vector<FilterDrop> filters;    // each active filter (minimum > 1), in the order applied
  std::vector<std::string> drops;     // one sentence per filter that removed anything (and the k-core's rounds)
  std::vector<std::string> warnings;  // e.g. every event at the same time
  std::int64_t items_without_text = 0, text_lines_unused = 0;
  std::int64_t unrated_items = 0;  // ids given to items without events (keep_unrated_items)
  std::string text_encoding;
  double seconds = 0;
};

PrepareReport prepare_dataset(const PrepareOptions& options);

}  // namespace longrec::data
