#include "longrec/data/prepare.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <optional>
#include <unordered_map>

#include "longrec/core/checksum.h"
#include "longrec/core/error.h"
#include "longrec/core/log.h"

namespace longrec::data {

namespace {

// One pass of one filter over the kept events: drops the events for which
// `drop(e)` holds and counts the users and items that lose their last event
// (user_count / item_count: kept events per id, updated).
template <typename Drop>
void filter_pass(const RawInteractions& raw, std::vector<char>& keep,
                 std::unordered_map<std::int64_t, std::int64_t>& user_count,
                 std::unordered_map<std::int64_t, std::int64_t>& item_count, FilterDrop& drop_record, Drop drop) {
  for (std::size_t e = 0; e < keep.size(); ++e) {
    if (!keep[e] || !drop(e)) continue;
    keep[e] = 0;
    ++drop_record.events;
    drop_record.users += --user_count[raw.users[e]] == 0;
    drop_record.items += --item_count[raw.items[e]] == 0;
  }
}

std::string plural(std::int64_t n, const char* one, const char* many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

// "min_item_events 2: dropped 3 events; removed 2 items (fewer than 2 events) and 1 user (every event was of
// such items)".
std::string describe_drop(const FilterDrop& d) {
  const bool by_item = d.filter == "min_item_events";
  const auto direct = by_item ? plural(d.items, "item", "items") : plural(d.users, "user", "users");
  const auto knock_on = by_item ? plural(d.users, "user", "users") : plural(d.items, "item", "items");
  return fmt::format("{} {}: dropped {}; removed {} (fewer than {} events) and {} (every event was {} such {})",
                     d.filter, d.minimum, plural(d.events, "event", "events"), direct, d.minimum, knock_on,
                     by_item ? "of" : "by", by_item ? "items" : "users");
}

// Applies the user/item minimums (once, or to a fixed point for k-core) to the
// `keep` mask: the item minimum first, then the user minimum, each pass over
// what the one before kept. Records per filter (summed over k-core rounds) the
// events it dropped, the users and items it removed directly (too few events)
// and those that lost their last event by it, so that every removed user and
// item is counted once: sum of users = raw users - users kept, the same for
// items and events.
void apply_filters(const RawInteractions& raw, const PrepareOptions& options, std::vector<char>& keep,
                   PrepareReport& report) {
  const int min_user = std::max(options.min_user_events, options.k_core);
  const int min_item = std::max(options.min_item_events, options.k_core);
  if (min_user <= 1 && min_item <= 1) return;
  std::unordered_map<std::int64_t, std::int64_t> user_count, item_count;
  for (std::size_t e = 0; e < keep.size(); ++e) {
    ++user_count[raw.users[e]];
    ++item_count[raw.items[e]];
  }
  FilterDrop by_item{"min_item_events", min_item}, by_user{"min_user_events", min_user};
  std::int64_t rounds = 0;
  for (bool changed = true; changed;) {
    ++rounds;
    const std::int64_t before = by_item.events + by_user.events;
    if (min_item > 1) {
      // Counts as they stand before the pass: an item's fate does not depend on the order of its events.
      const auto counts = item_count;
      filter_pass(raw, keep, user_count, item_count, by_item,
                  [&](std::size_t e) { return counts.at(raw.items[e]) < min_item; });
    }
    if (min_user > 1) {
      const auto counts = user_count;
      filter_pass(raw, keep, user_count, item_count, by_user,
                  [&](std::size_t e) { return counts.at(raw.users[e]) < min_user; });
    }
    changed = options.k_core > 0 && by_item.events + by_user.events > before;
  }
  for (const auto& drop : {by_item, by_user}) {
    if (drop.minimum <= 1) continue;
    report.filters.push_back(drop);
    if (drop.events > 0) report.drops.push_back(describe_drop(drop));
  }
  if (options.k_core > 0) {
    report.drops.push_back(fmt::format("{}-core reached after {} rounds", options.k_core, rounds));
  }
}

}  // namespace

PrepareReport prepare_dataset(const PrepareOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (options.item_order != "first" && options.item_order != "frequency") {
    throw ConfigError("prepare.item-order", fmt::format("got '{}', expected first or frequency", options.item_order));
  }
  // Refuse a non-empty target before reading anything.
  HistoryStoreWriter::Options writer_options{options.num_parts, options.overwrite, false};
  {
    std::error_code ec;
    if (std::filesystem::is_directory(options.output, ec) && !std::filesystem::is_empty(options.output, ec) &&
        !options.overwrite) {
      throw DataError(fmt::format("{}: target directory exists and is not empty; pass --overwrite to replace it",
                                  options.output.string()));
    }
  }

  if (options.keep_unrated_items && options.item_text.empty()) {
    throw ConfigError("prepare.keep_unrated_items",
                      "needs an item file (--items): the unrated items are the ones it lists without events");
  }
  PrepareReport report;
  const log::ProgressOptions progress_options{.log_lines = options.show_progress};
  RawInteractions raw;
  {
    RawReadOptions read = options.read;
    std::optional<log::ProgressBar> reading;
    if (options.show_progress) {
      log::ProgressOptions by_bytes = progress_options;
      by_bytes.unit = log::ProgressUnit::kBytes;
      std::error_code ec;
      const auto size = std::filesystem::file_size(options.input, ec);
      reading.emplace("prepare: read", ec ? 0 : static_cast<std::int64_t>(size), by_bytes);
      read.on_progress = [&reading](std::int64_t bytes) { reading->update(bytes); };
    }
    raw = read_interactions(options.input, read);
  }
  report.format = format_name(raw.format);
  report.format_guess = raw.format_guess;
  report.lines = raw.lines;
  report.bad_lines = raw.bad_lines;
  report.bad_line_examples = raw.bad_line_examples;
  const std::size_t n = raw.items.size();
  if (!raw.time_is_ordinal && n > 1 &&
      std::all_of(raw.times.begin(), raw.times.end(), [&](std::int64_t t) { return t == raw.times.front(); })) {
    // The order of events is still the file's; HSTU's time feature would see only zero gaps.
    report.warnings.push_back(
        fmt::format("every event of {} has the time {}: the events keep the file's order, but time gaps (HSTU's time "
                    "feature) are all zero; is the time column right (--time-col)?",
                    options.input.string(), raw.times.front()));
  }
  {
    std::unordered_map<std::int64_t, char> users, items;
    for (std::size_t e = 0; e < n; ++e) {
      users.emplace(raw.users[e], 0);
      items.emplace(raw.items[e], 0);
    }
    report.raw_users = static_cast<std::int64_t>(users.size());
    report.raw_items = static_cast<std::int64_t>(items.size());
    report.raw_events = static_cast<std::int64_t>(n);
  }

  std::vector<char> keep(n, 1);
  apply_filters(raw, options, keep, report);

  // Dense item ids: first appearance in file order, or by frequency (ties by first appearance).
  std::unordered_map<std::int64_t, std::int32_t> dense;
  std::vector<std::int64_t> item_raw_ids, item_counts;
  for (std::size_t e = 0; e < n; ++e) {
    if (!keep[e]) continue;
    const auto [it, inserted] = dense.emplace(raw.items[e], static_cast<std::int32_t>(item_raw_ids.size()));
    if (inserted) {
      item_raw_ids.push_back(raw.items[e]);
      item_counts.push_back(0);
    }
    ++item_counts[static_cast<std::size_t>(it->second)];
  }
  if (item_raw_ids.empty()) throw DataError(fmt::format("{}: the filters removed every event", options.input.string()));
  if (options.item_order == "frequency") {
    std::vector<std::size_t> order(item_raw_ids.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return item_counts[a] > item_counts[b]; });
    std::vector<std::int64_t> ids(order.size()), counts(order.size());
    for (std::size_t r = 0; r < order.size(); ++r) {
      ids[r] = item_raw_ids[order[r]];
      counts[r] = item_counts[order[r]];
      dense[ids[r]] = static_cast<std::int32_t>(r);
    }
    item_raw_ids = std::move(ids);
    item_counts = std::move(counts);
  }

  std::vector<std::string> texts;
  std::string checksum = file_checksum(options.input);
  std::string source = fmt::format("{}:{}", report.format, std::filesystem::absolute(options.input).string());
  if (!options.item_text.empty()) {
    ItemText text = read_item_text(options.item_text, options.text_encoding);
    if (!options.text_fields.empty() || options.text_style != "plain") {
      text.texts = compose_item_texts(text, options.text_fields, options.text_style);
    }
    report.text_encoding = text.encoding;
    if (options.keep_unrated_items) {
      // Items of the file with no event in the input at all (not those the
      // filters emptied), after the rated ones, in file order.
      std::unordered_map<std::int64_t, char> in_input;
      for (const auto item : raw.items) in_input.emplace(item, 0);
      for (const auto id : text.raw_ids) {
        if (in_input.contains(id) || dense.contains(id)) continue;
        dense.emplace(id, static_cast<std::int32_t>(item_raw_ids.size()));
        item_raw_ids.push_back(id);
        item_counts.push_back(0);
        ++report.unrated_items;
      }
    }
    texts.assign(item_raw_ids.size(), "");
    std::vector<char> has_text(item_raw_ids.size(), 0);
    for (std::size_t i = 0; i < text.raw_ids.size(); ++i) {
      const auto it = dense.find(text.raw_ids[i]);
      if (it == dense.end()) {
        ++report.text_lines_unused;
        continue;
      }
      texts[static_cast<std::size_t>(it->second)] = text.texts[i];
      has_text[static_cast<std::size_t>(it->second)] = 1;
    }
    report.items_without_text = std::count(has_text.begin(), has_text.end(), 0);
    checksum += ";" + file_checksum(options.item_text);
    source += fmt::format(" + item text {}", std::filesystem::absolute(options.item_text).string());
    if (options.keep_unrated_items) source += fmt::format(" ({} unrated items kept)", report.unrated_items);
  }

  // Users in raw-id order; each user's events by (time, file order).
  std::vector<std::size_t> order;
  order.reserve(n);
  for (std::size_t e = 0; e < n; ++e) {
    if (keep[e]) order.push_back(e);
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (raw.users[a] != raw.users[b]) return raw.users[a] < raw.users[b];
    return raw.times[a] < raw.times[b];
  });

  writer_options.with_ratings = raw.has_ratings;
  HistoryStoreWriter writer(options.output, writer_options);
  std::vector<std::int32_t> items;
  std::vector<std::int64_t> times;
  std::vector<float> ratings;
  std::optional<log::ProgressBar> writing;
  if (options.show_progress) {
    writing.emplace("prepare: write", static_cast<std::int64_t>(order.size()), progress_options);
  }
  for (std::size_t i = 0; i < order.size();) {
    if (writing) writing->update(static_cast<std::int64_t>(i));
    const std::int64_t user = raw.users[order[i]];
    items.clear();
    times.clear();
    ratings.clear();
    for (; i < order.size() && raw.users[order[i]] == user; ++i) {
      const std::size_t e = order[i];
      items.push_back(dense.at(raw.items[e]) + 1);
      times.push_back(raw.times[e]);
      if (raw.has_ratings) ratings.push_back(raw.ratings[e]);
    }
    writer.add_user(user, items, times, ratings);
  }
  if (writing) {
    writing->update(static_cast<std::int64_t>(order.size()));
    writing->finish();
  }
  writer.set_items(std::move(item_raw_ids), std::move(item_counts), std::move(texts));
  StoreMeta description;
  description.time_is_ordinal = raw.time_is_ordinal;
  description.item_order = options.item_order;
  description.source = source;
  description.source_checksum = checksum;
  report.meta = writer.commit(description);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace longrec::data
