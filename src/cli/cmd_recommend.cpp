// `longrec recommend`: top-K items for histories, from a serving bundle.
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "longrec/core/config.h"
#include "longrec/core/error.h"
#include "longrec/core/lists.h"
#include "longrec/serve/json_api.h"
#include "longrec/serve/recommender.h"

namespace longrec::cli {

namespace {

// Adds every item of a JSONL file ({"id": .., "text": ..} per line, blank lines
// skipped); the first refusal ends the command with the file and line named.
void add_new_items(serve::Recommender& recommender, const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError("recommend.new_items", fmt::format("{}: cannot open for reading", path));
  std::string line;
  std::int64_t number = 0, added = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const auto item = serve::new_item_request(serve::parse_object(line));
      recommender.add_item(item.id, item.text);
      ++added;
    } catch (const DataError& e) {
      throw DataError(fmt::format("{}:{}: {}", path, number, e.what()));
    }
  }
  if (in.bad()) throw SystemError(fmt::format("{}: read failed", path));
  fmt::print(stderr, "{}: {} new items added ({} in the catalogue)\n", path, added, recommender.num_items());
}

}  // namespace

int run_recommend(int argc, const char* const* argv) {
  std::string bundle, history, times, input, output, vector_out, new_items;
  int k = 10, threads = 0;
  bool include_seen = false;
  OptionRegistry r("recommend",
                   "Top-K items for a history of raw item ids, from a serving bundle (longrec export); one\n"
                   "history on the command line, or a JSONL file of requests {\"history\": [...], \"k\": 10}.\n"
                   "An hllm bundle with its item LLM also takes new items from their text first (--new_items).\n"
                   "Example: longrec recommend --model model.h5 --history 1193,661,914 --k 10",
                   "recommend");
  r.add("recommend", "model", &bundle, "serving bundle (.h5)");
  r.add("recommend", "history", &history, "raw item ids, oldest first, comma-separated");
  r.add("recommend", "times", &times, "event times for --history (default: 0, 1, 2, ...)");
  r.add("recommend", "k", &k, "items to return", check::in_range(1, 1 << 24));
  r.flag("recommend", "include_seen", &include_seen, "also recommend items of the history");
  r.add("recommend", "input", &input, "JSONL requests: {\"history\": [...], \"k\": N, \"times\": [...]} per line");
  r.add("recommend", "output", &output, "JSONL results for --input (one line per request, errors included)");
  r.add("recommend", "user_vector_out", &vector_out, "write the user vector of --history as a JSON list");
  r.add("recommend", "new_items", &new_items,
        "JSONL of items to add first: {\"id\": raw id, \"text\": \"...\"} per line (hllm bundles with the item LLM)",
        check::existing_file(true));
  r.add("recommend", "threads", &threads, "intra-op threads (0 = all cores)", check::in_range(0, check::kMaxThreads));
  r.constraint([&] {
    if (bundle.empty()) throw ConfigError("recommend.model", "a bundle is required");
    if (history.empty() == input.empty()) {
      throw ConfigError("recommend.history", "give either --history or --input (a JSONL file of requests)");
    }
    if (!input.empty() && output.empty()) throw ConfigError("recommend.output", "--input needs --output");
  });
  if (!r.parse(argc, argv)) return 0;
  // The request is checked before the bundle is read.
  const auto ids = history.empty() ? std::vector<std::int64_t>{} : parse_int_list("recommend.history", history);
  const auto event_times = times.empty() ? std::vector<std::int64_t>{} : parse_int_list("recommend.times", times);
  const auto recommender = serve::Recommender::load(bundle, threads);
  if (!new_items.empty()) add_new_items(*recommender, new_items);

  if (!history.empty()) {
    const auto recs = recommender->recommend(ids, k, !include_seen, event_times);
    fmt::print("{:>4}  {:>12}  {:>9}  {}\n", "rank", "item", "score", "title");
    for (std::size_t i = 0; i < recs.size(); ++i) {
      fmt::print("{:>4}  {:>12}  {:>9.6f}  {}\n", i + 1, recs[i].item, recs[i].score, recs[i].title);
    }
    if (!vector_out.empty()) {
      std::ofstream out(vector_out);
      out << nlohmann::json(recommender->user_vector(ids, event_times)).dump() << '\n';
      if (!out) throw SystemError(fmt::format("{}: write failed", vector_out));
    }
    return 0;
  }

  std::ifstream in(input);
  if (!in) throw ConfigError("recommend.input", fmt::format("{}: cannot open for reading", input));
  std::ofstream out(output);
  if (!out) throw ConfigError("recommend.output", fmt::format("{}: cannot open for writing", output));
  std::string line;
  std::int64_t number = 0, failed = 0, answered = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json result{{"line", number}};
    try {
      result.update(serve::answer_recommend(*recommender, serve::parse_object(line), k, !include_seen));
      ++answered;
    } catch (const std::exception& e) {
      result["error"] = fmt::format("{}:{}: {}", input, number, e.what());
      ++failed;
    }
    out << result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  }
  if (!out) throw SystemError(fmt::format("{}: write failed", output));
  fmt::print("{} requests answered, {} refused ({}: errors in place)\n", answered, failed, output);
  return failed > 0 ? 1 : 0;
}

}  // namespace longrec::cli
