#include "longrec/bench/data_benchmark.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iterator>

#include <fmt/format.h>

#include "longrec/core/error.h"
#include "longrec/data/history_store.h"
#include "longrec/data/prepare.h"
#include "longrec/data/synth.h"

namespace longrec::bench {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct LoaderRate {
  double seconds = 0;
  std::int64_t batches = 0, positions = 0, store_events = 0;
};

// One full training epoch through the loader: every user's history is read
// from the store and cut into padded batches.
LoaderRate time_loader(const fs::path& dataset, const data::LoaderConfig& config) {
  const auto start = Clock::now();
  data::HistoryLoader loader(dataset, config, data::SplitPart::Train);
  LoaderRate rate;
  while (auto batch = loader.next()) {
    ++rate.batches;
    for (auto len : batch->lengths) rate.positions += len;
  }
  rate.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  rate.store_events = data::HistoryStoreReader(dataset).meta().num_events;
  return rate;
}

// Writes a store back out as a raw `seq` file (user item item ...), so that
// prepare can be timed on a synthetic set of any size.
std::int64_t write_seq_file(const fs::path& dataset, const fs::path& out) {
  const data::HistoryStoreReader store(dataset);
  const auto raw_items = store.item_raw_ids();
  std::FILE* file = std::fopen(out.c_str(), "w");
  if (file == nullptr) throw SystemError(fmt::format("{}: cannot open for writing", out.string()));
  fmt::memory_buffer text;
  std::int64_t events = 0;
  for (int p = 0; p < store.num_parts(); ++p) {
    const auto offsets = store.part_offsets(p);
    const auto users = store.part_user_ids(p);
    std::vector<std::int32_t> items(static_cast<std::size_t>(offsets.back()));
    std::vector<std::int64_t> times(items.size());
    store.read_events(p, 0, offsets.back(), items.data(), times.data());
    for (std::size_t u = 0; u < users.size(); ++u) {
      fmt::format_to(std::back_inserter(text), "{}", users[u]);
      for (auto e = offsets[u]; e < offsets[u + 1]; ++e) {
        fmt::format_to(std::back_inserter(text), " {}", raw_items[static_cast<std::size_t>(items[e] - 1)]);
      }
      text.push_back('\n');
      events += offsets[u + 1] - offsets[u];
      if (text.size() > (1u << 24)) {
        std::fwrite(text.data(), 1, text.size(), file);
        text.clear();
      }
    }
  }
  std::fwrite(text.data(), 1, text.size(), file);
  if (std::fclose(file) != 0) throw SystemError(fmt::format("{}: write failed", out.string()));
  return events;
}

}  // namespace

std::vector<DataBenchmarkRow> benchmark_data(const DataBenchmarkOptions& options) {
  fs::create_directories(options.workdir);
  std::vector<DataBenchmarkRow> rows;
  // Both window policies: "last" reads whole histories but batches only the
  // newest max_len events; "all" batches every training position.
  const auto loader_rows = [&](const std::string& name, const fs::path& store) {
    for (const std::string windows : {"last", "all"}) {
      auto config = options.loader;
      config.windows = windows;
      const auto rate = time_loader(store, config);
      rows.push_back({fmt::format("loader ({}): events read", windows), name, rate.store_events, rate.seconds});
      rows.push_back({fmt::format("loader ({}): positions", windows), name, rate.positions, rate.seconds});
    }
  };

  if (!options.ml1m.empty()) {
    data::PrepareOptions prepare;
    prepare.input = options.ml1m;
    prepare.output = fs::path(options.workdir) / "ml-1m";
    prepare.overwrite = true;
    const auto report = data::prepare_dataset(prepare);
    rows.push_back({"prepare (parse+sort+write)", "ml-1m", report.meta.num_events, report.seconds});
    loader_rows("ml-1m", prepare.output);
  }
  if (options.synth_events > 0) {
    data::SynthConfig config;
    config.out = (fs::path(options.workdir) / "synth").string();
    config.mean_length = options.synth_mean_length;
    // 5% margin: lengths are clamped.
    config.users = options.synth_events / options.synth_mean_length * 21 / 20 + 1;
    config.items = 1'000'000;
    config.clusters = 1000;
    // Events per second of generating and writing histories, comparable with earlier runs: the
    // items' texts (about 0.8 s and 87 MB for a million items) are not what this row measures.
    config.item_text = false;
    config.overwrite = true;
    // Clamping at min/max_length moves the realised mean: top up until the target is met.
    data::SynthReport report;
    for (int attempt = 0; attempt < 3; ++attempt) {
      report = data::generate_synthetic(config, /*show_progress=*/true);
      if (report.meta.num_events >= options.synth_events) break;
      config.users = config.users * options.synth_events / std::max<std::int64_t>(1, report.meta.num_events) + 1;
    }
    const std::string name = fmt::format("synth ({} users)", report.meta.num_users);
    rows.push_back({"synth (generate+write)", name, report.meta.num_events, report.seconds});
    loader_rows(name, config.out);
    if (options.prepare_synth) {
      const fs::path raw = fs::path(options.workdir) / "synth.seq.txt";
      write_seq_file(config.out, raw);
      data::PrepareOptions prepare;
      prepare.input = raw;
      prepare.output = fs::path(options.workdir) / "synth-prepared";
      prepare.overwrite = true;
      const auto prepared = data::prepare_dataset(prepare);
      rows.push_back({"prepare (parse+sort+write)", name + " seq", prepared.meta.num_events, prepared.seconds});
      fs::remove(raw);
    }
  }

  fs::remove_all(options.workdir);
  return rows;
}

}  // namespace longrec::bench
