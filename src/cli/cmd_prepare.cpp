// `longrec prepare`: raw log -> history store.
#include "commands.h"
#include "longrec/core/config.h"
#include "longrec/core/lists.h"
#include "longrec/core/log.h"
#include "longrec/data/prepare.h"

namespace longrec::cli {

int run_prepare(int argc, const char* const* argv) {
  data::PrepareOptions o;
  std::string input, items, out;
  OptionRegistry r("prepare",
                   "Reads a raw interaction log (seq, movielens-dat, csv, tsv) and optional item text, and writes\n"
                   "the HDF5 history store: dense item ids, per-user offsets, events sorted by time.\n"
                   "Example: longrec prepare --input ratings.dat --items movies.dat --out data/ml-1m",
                   "prepare");
  std::string text_fields;
  r.add("prepare", "input", &input, "raw interaction file (required)", check::existing_file());
  r.add("prepare", "items", &items, "item text file: movies.dat, movies.csv, u.item or item_id,text CSV",
        check::existing_file(/*optional=*/true));
  r.add("prepare", "out", &out, "output dataset directory (required)");
  r.add("prepare", "format", &o.read.format, "auto | seq | pairs | movielens-dat | csv | tsv",
        check::one_of({"auto", "seq", "pairs", "movielens-dat", "csv", "tsv"}));
  r.add("prepare", "header", &o.read.header, "csv/tsv: auto | yes | no", check::one_of({"auto", "yes", "no"}));
  r.add("prepare", "user_col", &o.read.user_column, "csv/tsv user column (name or 0-based index; empty = detect)");
  r.add("prepare", "item_col", &o.read.item_column, "csv/tsv item column");
  r.add("prepare", "time_col", &o.read.time_column, "csv/tsv time column (absent = file order)");
  r.add("prepare", "rating_col", &o.read.rating_column, "csv/tsv rating column");
  r.add("prepare", "text_encoding", &o.text_encoding, "item text encoding: auto | utf-8 | latin-1",
        check::one_of({"auto", "utf-8", "latin-1"}));
  r.add("prepare", "text_fields", &text_fields,
        "item text fields, comma-separated, in this order (movies.dat: title,genres; a CSV: its header's names; "
        "empty = all)");
  r.add("prepare", "text_style", &o.text_style,
        "item text: plain (values joined by ' | ') | key_value (HLLM's "
        "'title: ..., genres: ...')",
        check::one_of({"plain", "key_value"}));
  r.add("prepare", "item_order", &o.item_order, "dense item ids by: first (appearance) | frequency",
        check::one_of({"first", "frequency"}));
  r.add("prepare", "min_user_events", &o.min_user_events, "drop users with fewer events", check::in_range(1, 1 << 30));
  r.add("prepare", "min_item_events", &o.min_item_events, "drop items with fewer events", check::in_range(1, 1 << 30));
  r.add("prepare", "k_core", &o.k_core, "k-core filter (0 = off)", check::in_range(0, 1 << 30));
  r.flag("prepare", "keep_unrated_items", &o.keep_unrated_items,
         "give every item of --items an id even without events (ranked in evaluation, drawn as a negative), as the "
         "HSTU reference ranks all 3,883 movies of ML-1M");
  r.add("prepare", "num_parts", &o.num_parts, "part files (users are hashed into parts)", check::in_range(1, 4096));
  r.flag("prepare", "overwrite", &o.overwrite, "replace a non-empty output directory");
  r.flag("prepare", "skip_bad_lines", &o.read.skip_bad_lines, "count and report malformed lines instead of failing");
  r.constraint([&] {
    if (out.empty()) throw ConfigError("prepare.out", "an output directory is required");
  });
  if (!r.parse(argc, argv)) return 0;
  o.input = input;
  o.item_text = items;
  if (!text_fields.empty()) o.text_fields = split_list(text_fields);
  o.output = out;
  o.show_progress = true;

  const auto report = data::prepare_dataset(o);
  const auto& m = report.meta;
  log::info("read {} ({} lines, format {}{}): {} users, {} items, {} events", input, report.lines, report.format,
            report.format_guess.empty()
                ? ""
                : fmt::format(", guessed from {}; --format chooses another", report.format_guess),
            report.raw_users, report.raw_items, report.raw_events);
  if (report.bad_lines > 0) {
    log::warn("skipped {} malformed lines; the first ones:", report.bad_lines);
    for (const auto& example : report.bad_line_examples) log::warn("  {}", example);
  }
  for (const auto& warning : report.warnings) log::warn("{}", warning);
  for (const auto& drop : report.drops) log::info("{}", drop);
  if (!report.filters.empty()) {
    log::info("the filters removed {} of {} users, {} of {} items and {} of {} events", report.raw_users - m.num_users,
              report.raw_users, report.raw_items - m.num_items, report.raw_items, report.raw_events - m.num_events,
              report.raw_events);
  }
  if (!items.empty()) {
    log::info("item text from {} ({}): {} items without text, {} text lines for items not in the data", items,
              report.text_encoding, report.items_without_text, report.text_lines_unused);
    if (o.keep_unrated_items) {
      log::info("{} items of {} without events kept as ids {}..{} (--keep_unrated_items)", report.unrated_items, items,
                m.num_items - report.unrated_items + 1, m.num_items);
    }
  }
  log::info("wrote {}: {} users, {} items, {} events in {} parts ({:.2f} s, {} events/s)", out, m.num_users,
            m.num_items, m.num_events, m.num_parts, report.seconds,
            log::human_count(static_cast<double>(m.num_events) / std::max(report.seconds, 1e-9)));
  return 0;
}

}  // namespace longrec::cli
