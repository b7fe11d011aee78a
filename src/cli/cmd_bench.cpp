// `longrec bench <name>`: benchmarks whose figures go to docs/results.md.
//   data: events/s through prepare (raw -> store) and through the loader
//         (read + batch, one consumer core) on ML-1M and on a synthetic store.
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "commands.h"
#include "longrec/core/config.h"
#include "longrec/core/error.h"
#include "longrec/core/lists.h"
#include "longrec/core/log.h"
#include "longrec/data/loader.h"
#include "longrec/data/prepare.h"
#include "longrec/data/synth.h"
#include "longrec/bench/comm_benchmark.h"
#include "longrec/bench/data_benchmark.h"
#include "longrec/bench/llama_benchmark.h"
#include "longrec/model/llama/llama_config.h"
#include "longrec/model/model_config.h"
#include "longrec/serve/recommender.h"
#include "longrec/bench/serve_benchmark.h"
#include "longrec/bench/train_benchmark.h"
#include "longrec/bench/token_benchmark.h"
#include "longrec/train/train_config.h"

namespace longrec::cli {

namespace {

int bench_data(int argc, const char* const* argv) {
  bench::DataBenchmarkOptions options;
  OptionRegistry r("bench data",
                   "Events/s through prepare (raw -> store) and through the loader (read + batch, one core)\n"
                   "on ML-1M and on a synthetic store of >= synth_events events.",
                   "bench");
  r.add("bench", "ml1m", &options.ml1m, "ML-1M raw sequences file (empty = skip)", check::existing_file(true));
  r.add("bench", "workdir", &options.workdir, "scratch directory for the stores (removed at the end)");
  r.add("bench", "synth_events", &options.synth_events, "events in the synthetic store (0 = skip)",
        check::in_range<std::int64_t>(0, 100'000'000'000));
  r.add("bench", "synth_mean_length", &options.synth_mean_length, "mean history length of the synthetic users",
        check::in_range<std::int64_t>(2, 1 << 30));
  r.flag("bench", "prepare_synth", &options.prepare_synth,
         "also time prepare on the synthetic set written as a seq file");
  data::register_loader_options(r, options.loader);
  if (!r.parse(argc, argv)) return 0;

  const auto rows = bench::benchmark_data(options);
  fmt::print("| {:<28} | {:<26} | {:>12} | {:>8} | {:>10} |\n", "stage", "data", "events", "seconds", "events/s");
  fmt::print("|{:-<30}|{:-<28}|{:-<14}|{:-<10}|{:-<12}|\n", "", "", "", "", "");
  for (const auto& x : rows) {
    fmt::print("| {:<28} | {:<26} | {:>12} | {:>8.2f} | {:>10} |\n", x.stage, x.data, x.events, x.seconds,
               log::human_count(static_cast<double>(x.events) / std::max(x.seconds, 1e-9)));
  }
  fmt::print("loader: one epoch of the train split, batch_size {}, max_len {}, one reader thread + one consumer\n",
             options.loader.batch_size, options.loader.max_len);
  return 0;
}

int bench_train(int argc, const char* const* argv) {
  train::TrainConfig train;
  model::ModelConfig model;
  data::LoaderConfig data;
  int steps = 20, warmup = 3;
  OptionRegistry r("bench train",
                   "Training throughput of a configuration on its dataset: samples/s, tokens/s, achieved\n"
                   "FLOP/s and MFU against the matrix-multiply peak measured in the same run.\n"
                   "Example: longrec bench train --config configs/ml-1m/hstu.ini",
                   "bench");
  r.add("bench", "steps", &steps, "timed steps", check::in_range(1, 1000000));
  r.add("bench", "warmup", &warmup, "untimed steps first", check::in_range(0, 1000000));
  train::register_train_options(r, train);
  model::register_model_options(r, model);
  data::register_loader_options(r, data);
  if (!r.parse(argc, argv)) return 0;
  const auto b = bench::benchmark_training(train, model, data, steps, warmup);
  if (b.rank != 0) return 0;
  fmt::print(
      "| model | ranks x threads | batch | max_len | steps | samples/s | tokens/s | GFLOP/sample | achieved GFLOP/s "
      "| peak GFLOP/s | MFU | comm ms/step |\n");
  fmt::print("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  fmt::print("| {} | {} x {} | {} | {} | {} | {:.1f} | {} | {:.3f} | {:.1f} | {:.1f} | {:.1f}% | {:.1f} |\n", b.model,
             b.world, train.threads, data.batch_size, data.max_len, b.steps, b.samples_per_s,
             log::human_count(b.tokens_per_s), b.flops_per_sample / 1e9, b.flops_per_s / 1e9, b.peak_flops_per_s / 1e9,
             100 * b.mfu(), b.comm_ms_per_step);
  return 0;
}

// The `bench.histories` list of the token and serving benchmarks: lengths in [2, 2^20], at least one.
std::vector<std::int64_t> parse_history_lengths(const std::string& text) {
  std::vector<std::int64_t> lengths;
  for (const auto value : parse_int_list("bench.histories", text)) {
    if (value < 2 || value > (1 << 20)) {
      throw ConfigError("bench.histories", fmt::format("'{}' is not a history length (2 to {})", value, 1 << 20));
    }
    lengths.push_back(value);
  }
  if (lengths.empty()) throw ConfigError("bench.histories", "expected at least one length");
  return lengths;
}

int bench_tokens(int argc, const char* const* argv) {
  model::ModelConfig model;
  model.personalization.segment_len = 128;
  model.personalization.tokens_per_group = 4;
  model.personalization.recent_window = 128;
  model.dropout = 0.0;
  bench::TokenBenchmarkOptions options;
  std::string histories = "256,512,1024,2048,4096,8192";
  OptionRegistry r("bench tokens",
                   "Personalization tokens vs full-sequence attention, side by side on random histories:\n"
                   "training-step FLOPs and time (block path) per history length, and serving latency of\n"
                   "one user from a cached UserState vs recomputing the whole history. With\n"
                   "--model.backbone=hllm: HLLM's user LLM over learned item vectors (the item LLM's cost does\n"
                   "not depend on the history length).\n"
                   "Example: longrec bench tokens --bench.histories=1024,4096 --threads 2",
                   "bench");
  r.add("bench", "histories", &histories, "history lengths, comma-separated");
  r.add("bench", "events_per_step", &options.events_per_step, "events per training step (rows = this / history)",
        check::in_range<std::int64_t>(1, 1 << 24));
  r.add("bench", "items", &options.items, "catalogue size of the random histories",
        check::in_range<std::int64_t>(2, 100'000'000));
  r.add("bench", "reps", &options.reps, "timed training steps per model and length (median)",
        check::in_range(1, 1000000));
  r.add("bench", "requests", &options.serving_requests, "timed serving requests per length (median)",
        check::in_range(1, 10'000'000));
  r.add("bench", "threads", &options.threads, "intra-op threads (0 = all cores)",
        check::in_range(0, check::kMaxThreads));
  model::register_model_options(r, model);
  r.constraint([&] { options.histories = parse_history_lengths(histories); });
  if (!r.parse(argc, argv)) return 0;
  const auto b = bench::benchmark_tokens(model, options);
  fmt::print("full: {}\ntokens: {}\n\n", b.full_model, b.tokens_model);
  fmt::print(
      "| history | rows/step | full GFLOP/step | tokens GFLOP/step | FLOP ratio | full ms/step | tokens ms/step "
      "| time ratio | full us/event | tokens us/event | serve full ms | serve state ms | serve ratio |\n");
  fmt::print("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& row : b.rows) {
    const double events = static_cast<double>(row.history * row.rows);
    fmt::print(
        "| {} | {} | {:.2f} | {:.2f} | {:.1f}x | {:.0f} | {:.0f} | {:.1f}x | {:.1f} | {:.1f} | {:.1f} | {:.2f} | "
        "{:.1f}x |\n",
        row.history, row.rows, row.full_gflop, row.tokens_gflop, row.full_gflop / row.tokens_gflop, row.full_ms,
        row.tokens_ms, row.full_ms / row.tokens_ms, 1000 * row.full_ms / events, 1000 * row.tokens_ms / events,
        row.serve_full_ms, row.serve_state_ms, row.serve_full_ms / row.serve_state_ms);
  }
  return 0;
}

int bench_llama(int argc, const char* const* argv) {
  bench::LlamaBenchmarkOptions options;
  std::string sizes = "llama-d256-l2-h4-kv2-i1024-v1000,llama-d512-l2-h8-kv4-i2048-v1000";
  OptionRegistry r("bench llama",
                   "The Llama blocks of HLLM alone on random inputs_embeds: training-step (forward + backward)\n"
                   "tokens/s, achieved GFLOP/s and MFU against the fp32 matmul peak measured in the same run.\n"
                   "Example: longrec bench llama --bench.sizes=llama-d512-l2-h8-kv4-i2048-v1000 --threads 2",
                   "bench");
  r.add("bench", "sizes", &sizes, "Llama size descriptors, comma-separated");
  r.add("bench", "batch", &options.batch, "sequences per step", check::in_range<std::int64_t>(1, 1 << 16));
  r.add("bench", "seq_len", &options.seq_len, "tokens per sequence", check::in_range<std::int64_t>(1, 1 << 16));
  r.add("bench", "reps", &options.reps, "timed steps per size (median)", check::in_range(1, 1000000));
  r.add("bench", "threads", &options.threads, "intra-op threads", check::in_range(1, check::kMaxThreads));
  r.add("bench", "items", &options.items, "item texts of the packed-vs-padded table",
        check::in_range<std::int64_t>(1, 1 << 20));
  r.add("bench", "min_item_len", &options.min_item_len, "shortest item text (tokens)",
        check::in_range<std::int64_t>(1, 1 << 14));
  r.add("bench", "max_item_len", &options.max_item_len, "longest item text (tokens)",
        check::in_range<std::int64_t>(1, 1 << 14));
  r.constraint([&] {
    if (options.min_item_len > options.max_item_len) {
      throw ConfigError("bench.min_item_len",
                        fmt::format("{} is above bench.max_item_len {}", options.min_item_len, options.max_item_len));
    }
    options.sizes = split_list(sizes);
    if (options.sizes.empty()) throw ConfigError("bench.sizes", "expected at least one Llama size descriptor");
    for (const auto& s : options.sizes) {
      try {
        (void)model::llama::LlamaConfig::from_descriptor(s);
      } catch (const ConfigError& e) {
        throw ConfigError("bench.sizes", e.what());
      }
    }
  });
  if (!r.parse(argc, argv)) return 0;
  const auto rows = bench::benchmark_llama(options);
  fmt::print(
      "| size | threads | tokens/step | GFLOP/step | ms/step | tokens/s | achieved GFLOP/s | peak GFLOP/s | MFU |\n");
  fmt::print("|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& row : rows) {
    fmt::print("| {} | {} | {} | {:.2f} | {:.1f} | {:.0f} | {:.1f} | {:.1f} | {:.0f}% |\n", row.size, options.threads,
               row.tokens_per_step, row.gflop_per_step, row.ms_per_step, row.tokens_per_s, row.achieved_gflops,
               row.peak_gflops, 100 * row.mfu);
  }
  fmt::print("\nItem texts of {} to {} tokens, packed (PackedSequences) vs padded to the longest, training step:\n",
             options.min_item_len, options.max_item_len);
  fmt::print(
      "| size | items | real tokens | padded tokens | packed attention tokens | padded ms | packed ms | padded / "
      "packed | packed real tokens/s |\n");
  fmt::print("|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& row : bench::benchmark_llama_packed(options)) {
    fmt::print("| {} | {} | {} | {} | {} | {:.1f} | {:.1f} | {:.2f}x | {:.0f} |\n", row.size, row.items,
               row.real_tokens, row.padded_tokens, row.bucket_tokens, row.padded_ms, row.packed_ms,
               row.padded_ms / row.packed_ms, row.packed_tokens_per_s);
  }
  return 0;
}

int bench_serve(int argc, const char* const* argv) {
  bench::ServeBenchmarkOptions options;
  std::string bundle, histories = "200,1000,4000", request_threads = "1,2";
  int threads = 1;
  OptionRegistry r("bench serve",
                   "Serving cost of a bundle, side by side: a request (one new event, then top-k) answered by\n"
                   "recomputing the whole history vs from a cached UserState, per history length and number\n"
                   "of concurrent request threads: requests/s, p50 and p99 latency.\n"
                   "Example: longrec bench serve --model model.h5 --bench.histories=200,1000,4000",
                   "bench");
  r.add("bench", "model", &bundle, "serving bundle (.h5) whose model reads the longest history");
  r.add("bench", "histories", &histories, "history lengths, comma-separated");
  r.add("bench", "request_threads", &request_threads, "concurrent request threads, comma-separated");
  r.add("bench", "threads", &threads, "intra-op threads per request", check::in_range(1, check::kMaxThreads));
  r.add("bench", "seconds", &options.seconds, "timed seconds per cell", check::in_range(0.01, 86400.0));
  r.add("bench", "warmup", &options.warmup, "untimed requests per thread first", check::in_range(0, 1000000));
  r.add("bench", "k", &options.k, "items per answer", check::in_range(1, 1 << 24));
  r.add("bench", "users_per_thread", &options.users_per_thread, "users each thread serves round robin",
        check::in_range(1, 1000000));
  r.constraint([&] {
    if (bundle.empty()) throw ConfigError("bench.model", "a serving bundle is required (longrec export)");
    options.histories = parse_history_lengths(histories);
    options.threads.clear();
    for (const auto value : parse_int_list("bench.request_threads", request_threads)) {
      if (value < 1 || value > 1024) {
        throw ConfigError("bench.request_threads", fmt::format("'{}': expected 1..1024 threads", value));
      }
      options.threads.push_back(static_cast<int>(value));
    }
    if (options.threads.empty()) throw ConfigError("bench.request_threads", "expected at least one thread count");
  });
  if (!r.parse(argc, argv)) return 0;
  const auto recommender = serve::Recommender::load(bundle, threads);
  const auto rows = bench::benchmark_serving(*recommender, options);
  fmt::print("model: {}\n{} intra-op thread(s) per request, top-{}, {:.1f} s per cell\n\n", recommender->describe(),
             threads, options.k, options.seconds);
  fmt::print(
      "| history | request threads | recompute req/s | p50 ms | p99 ms | state req/s | p50 ms | p99 ms | "
      "req/s ratio | p50 ratio | state KiB | events at end |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (std::size_t i = 0; i + 1 < rows.size(); i += 2) {
    const auto& full = rows[i];
    const auto& state = rows[i + 1];
    fmt::print(
        "| {} | {} | {:.1f} | {:.2f} | {:.2f} | {:.1f} | {:.2f} | {:.2f} | {:.1f}x | {:.1f}x | {:.0f} | {:.0f} |\n",
        full.history, full.threads, full.requests_per_s, full.p50_ms, full.p99_ms, state.requests_per_s, state.p50_ms,
        state.p99_ms, state.requests_per_s / full.requests_per_s, full.p50_ms / state.p50_ms, state.state_bytes / 1024,
        state.final_events);
  }
  return 0;
}

// nccl-tests' short flags (-b 8 -e 128M -f 2 -n 20 -w 5 -c 1 -d float) as keys.
std::vector<std::string> expand_nccl_tests_flags(int argc, const char* const* argv) {
  static const std::map<std::string, std::string> kFlags{{"-b", "min_bytes"}, {"-e", "max_bytes"}, {"-f", "factor"},
                                                         {"-n", "iters"},     {"-w", "warmup"},    {"-c", "check"},
                                                         {"-d", "dtype"}};
  std::vector<std::string> out{argv[0]};
  for (int i = 1; i < argc; ++i) {
    const auto it = kFlags.find(argv[i]);
    if (it == kFlags.end()) {
      out.emplace_back(argv[i]);
      continue;
    }
    if (i + 1 >= argc) throw ConfigError("bench." + it->second, fmt::format("{} needs a value", argv[i]));
    out.push_back(fmt::format("--bench.{}={}", it->second, argv[++i]));
  }
  return out;
}

int bench_comm(int argc, const char* const* argv) {
  bench::CommBenchmarkOptions options;
  std::string min_bytes = "8", max_bytes = "64M", collectives = "all_reduce,all_gather,all_to_all_v";
  int check = 1;
  OptionRegistry r("bench comm",
                   "Collective bandwidth between the ranks of the job (run it under mpirun), in the form of\n"
                   "nccl-tests: size, count, type, time, algbw, busbw, #wrong per collective and size. MPI moves\n"
                   "CPU tensors, NCCL CUDA tensors (--bench.device=cuda, or auto with a GPU).\n"
                   "nccl-tests flags work too: -b MIN -e MAX -f FACTOR -n ITERS -w WARMUP -c CHECK -d TYPE.\n"
                   "Example: mpirun -np 2 longrec bench comm -b 8 -e 64M -f 4",
                   "bench");
  r.add("bench", "min_bytes", &min_bytes, "smallest size (-b; K, M, G suffixes)");
  r.add("bench", "max_bytes", &max_bytes, "largest size (-e)");
  r.add("bench", "factor", &options.factor, "size multiplier between rows (-f)", check::in_range(1.0, 1024.0));
  r.add("bench", "iters", &options.iters, "timed iterations per size (-n)", check::in_range(1, 1000000));
  r.add("bench", "warmup", &options.warmup, "untimed iterations per size (-w)", check::in_range(0, 1000000));
  r.add("bench", "check", &check, "verify results, count wrong elements (-c 0|1)");
  r.add("bench", "dtype", &options.dtype, "element type (-d)", check::one_of({"float", "double", "int64"}));
  r.add("bench", "collectives", &collectives, "comma-separated: all_reduce, all_gather, all_to_all_v");
  r.add("bench", "device", &options.device, "cpu (MPI), cuda (NCCL) or auto", check::one_of({"auto", "cpu", "cuda"}));
  r.constraint([&] {
    options.min_bytes = bench::parse_byte_size("bench.min_bytes", min_bytes);
    options.max_bytes = bench::parse_byte_size("bench.max_bytes", max_bytes);
    if (check != 0 && check != 1) throw ConfigError("bench.check", fmt::format("got {}, expected 0 or 1", check));
    options.check = check == 1;
    options.collectives = split_list(collectives);
  });
  const auto args = expand_nccl_tests_flags(argc, argv);
  std::vector<const char*> pointers;
  for (const auto& a : args) pointers.push_back(a.c_str());
  if (!r.parse(static_cast<int>(pointers.size()), pointers.data())) return 0;
  const auto b = bench::benchmark_collectives(options);
  if (b.rank != 0) return 0;
  fmt::print("# longrec bench comm: {} ranks, {} backend, {} timed + {} warmup iterations per size\n", b.world,
             b.backend, options.iters, options.warmup);
  std::string current;
  for (const auto& row : b.rows) {
    if (row.collective != current) {
      current = row.collective;
      fmt::print(
          "#\n# {}\n#{:>12} {:>12} {:>8} {:>10} {:>8} {:>8} {:>8}\n#{:>12} {:>12} {:>8} {:>10} {:>8} {:>8} {:>8}\n",
          current, "size", "count", "type", "time", "algbw", "busbw", "#wrong", "(B)", "(elements)", "", "(us)",
          "(GB/s)", "(GB/s)", "");
    }
    fmt::print(" {:>12} {:>12} {:>8} {:>10.1f} {:>8.3f} {:>8.3f} {:>8}\n", row.bytes, row.count, row.type, row.time_us,
               row.algbw, row.busbw, row.wrong < 0 ? std::string("N/A") : std::to_string(row.wrong));
  }
  return 0;
}

}  // namespace

int run_bench(int argc, const char* const* argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0) {
    fmt::print(
        "Usage: longrec bench <name> [options]\n\nBenchmarks:\n  data   events/s through prepare and the loader\n"
        "  train  training samples/s, tokens/s and MFU of a configuration\n"
        "  tokens personalization tokens vs full attention: step cost and serving latency by history length\n"
        "  llama  the Llama blocks of HLLM alone: training tokens/s and MFU\n"
        "  comm   collective bandwidth between ranks (nccl-tests table; run under mpirun)\n"
        "  serve  serving requests/s and latency: whole-history recompute vs cached user state\n");
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "data") == 0) return bench_data(argc - 1, argv + 1);
  if (std::strcmp(argv[1], "train") == 0) return bench_train(argc - 1, argv + 1);
  if (std::strcmp(argv[1], "tokens") == 0) return bench_tokens(argc - 1, argv + 1);
  if (std::strcmp(argv[1], "llama") == 0) return bench_llama(argc - 1, argv + 1);
  if (std::strcmp(argv[1], "comm") == 0) return bench_comm(argc - 1, argv + 1);
  if (std::strcmp(argv[1], "serve") == 0) return bench_serve(argc - 1, argv + 1);
  throw ConfigError("bench",
                    fmt::format("unknown benchmark '{}', expected: data, train, tokens, llama, comm, serve", argv[1]));
}

}  // namespace longrec::cli
