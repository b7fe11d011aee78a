#include "longrec/data/loader.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>
#include <unordered_map>
#include <variant>

#include "longrec/core/config.h"
#include "longrec/core/error.h"
#include "longrec/core/rng.h"
#include "longrec/data/history_store.h"

namespace longrec::data {

void register_loader_options(OptionRegistry& r, LoaderConfig& c) {
  r.add("data", "batch_size", &c.batch_size, "global batch size (rows per step over all ranks)",
        check::in_range(1, 1 << 20));
  r.add("data", "max_len", &c.max_len, "longest input window in events", check::in_range(1, 1 << 20));
  r.add("data", "split", &c.split, "split protocol: loo | last2", check::one_of({"loo", "last2"}));
  r.add("data", "windows", &c.windows,
        "training windows: last (most recent max_len events per user) | all (tile the whole history)",
        check::one_of({"last", "all"}));
  r.add("data", "seed", &c.seed, "seed of the shuffles");
  r.add("data", "shuffle_users", &c.shuffle_users, "shuffle buffer size in users", check::in_range(1, 1 << 24));
  r.add("data", "read_users", &c.read_users, "users per chunk read from the store", check::in_range(1, 1 << 20));
  r.add("data", "prefetch_batches", &c.prefetch_batches, "batches built ahead by the reader thread",
        check::in_range(1, 1024));
  r.flag("data", "group_by_length", &c.group_by_length,
         "batch users of similar length together (less padding, but batches are not i.i.d.)");
  r.flag("data", "drop_last", &c.drop_last, "drop the final partial batch of a training epoch");
}

std::int64_t Batch::num_events() const {
  std::int64_t n = 0;
  for (const auto len : lengths) n += len;
  return n + (training ? n : rows);
}

namespace {

// Users [first_user, end_user) of one part.
struct Chunk {
  int part;
  std::int64_t first_user, end_user;
};

// Events [begin, end) of one user: inputs are [begin, end-1), targets the
// next events (training) or event end-1 alone (evaluation).
struct SampleRef {
  std::int32_t chunk;
  std::int32_t user;  // index within the chunk
  std::int64_t begin, end;
};

struct EpochPlan {
  std::vector<SampleRef> samples;
  std::vector<std::int64_t> batch_begin;       // [num_batches + 1] into samples
  std::vector<std::int64_t> chunk_last_batch;  // per chunk: last batch using it (-1: none)
  std::int64_t epoch = 0;
  std::int64_t num_batches() const { return static_cast<std::int64_t>(batch_begin.size()) - 1; }
};

struct ChunkData {
  std::vector<std::int64_t> offsets;  // [users + 1], relative to the chunk's first event
  std::vector<std::int32_t> items;
  std::vector<std::int64_t> times;
  std::vector<std::int64_t> user_ids;
};

}  // namespace

struct HistoryLoader::Impl {
  HistoryStoreReader store;
  LoaderConfig config;
  SplitPart part;
  SplitProtocol protocol;
  int rank, world;
  std::vector<Chunk> chunks;
  std::vector<std::vector<std::int64_t>> part_user_ids;  // loaded lazily per part
  std::int64_t total_samples = 0, owned_users = 0, total_users = 0;

  // Consumer-side state.
  LoaderPosition next_position;
  bool running = false;

  // Producer thread and its queue.
  std::thread worker;
  std::mutex mutex;
  std::condition_variable changed;
  struct EndOfEpoch {};
  std::deque<std::variant<Batch, EndOfEpoch, std::exception_ptr>> queue;
  bool stop = false;
  std::function<void(Batch&)> preparer;  // runs on the worker thread

  Impl(const std::filesystem::path& dataset, LoaderConfig c, SplitPart p, int r, int w)
      : store(dataset), config(std::move(c)), part(p), protocol(parse_split_protocol(config.split)), rank(r), world(w) {
    if (w < 1 || r < 0 || r >= w) throw Error(fmt::format("invalid rank {} of world {}", r, w));
    if (config.batch_size < 1) throw ConfigError("data.batch_size", "expected a value >= 1");
    if (config.max_len < 1) throw ConfigError("data.max_len", "expected a value >= 1");
    part_user_ids.resize(static_cast<std::size_t>(store.num_parts()));
    for (int q = 0; q < store.num_parts(); ++q) {
      const std::int64_t users = store.part_num_users(q);
      for (std::int64_t u = 0; u < users; u += config.read_users) {
        chunks.push_back({q, u, std::min<std::int64_t>(users, u + config.read_users)});
      }
    }
    for (std::size_t c = 0; c < chunks.size(); ++c) {
      if (static_cast<int>(c % static_cast<std::size_t>(world)) == rank) {
        owned_users += chunks[c].end_user - chunks[c].first_user;
      }
      for_each_sample(static_cast<std::int32_t>(c), [&](const SampleRef&) { ++total_samples; });
      total_users += chunks[c].end_user - chunks[c].first_user;
    }
  }

  ~Impl() { stop_worker(); }

  // Calls f for every sample of chunk c, in user order.
  template <typename F>
  void for_each_sample(std::int32_t c, F&& f) const {
    const Chunk& chunk = chunks[static_cast<std::size_t>(c)];
    const auto offsets = store.part_offsets(chunk.part);
    for (std::int64_t u = chunk.first_user; u < chunk.end_user; ++u) {
      const std::int64_t n = offsets[u + 1] - offsets[u];
      const UserSplit split = split_user(n, protocol, part);
      const auto user = static_cast<std::int32_t>(u - chunk.first_user);
      if (part == SplitPart::Train) {
        // Windows of max_len + 1 events, overlapping by one so that every
        // training target is predicted exactly once; "last" keeps the newest.
        for (std::int64_t end = split.train_end; end >= 2; end -= config.max_len) {
          f(SampleRef{c, user, std::max<std::int64_t>(0, end - config.max_len - 1), end});
          if (config.windows == "last") break;
        }
      } else if (split.eval_target >= 1) {
        f(SampleRef{c, user, std::max<std::int64_t>(0, split.eval_target - config.max_len), split.eval_target + 1});
      }
    }
  }

  std::int64_t batches_per_epoch() const {
    const std::int64_t b = config.batch_size;
    const bool drop = config.drop_last && part == SplitPart::Train;
    return drop ? total_samples / b : (total_samples + b - 1) / b;
  }

  EpochPlan build_plan(std::int64_t epoch) const {
    EpochPlan plan;
    plan.epoch = epoch;
    plan.samples.reserve(static_cast<std::size_t>(total_samples));
    plan.batch_begin.push_back(0);
    const auto b = static_cast<std::size_t>(config.batch_size);
    std::vector<std::int32_t> order(chunks.size());
    std::iota(order.begin(), order.end(), 0);
    const bool train = part == SplitPart::Train;
    const std::size_t chunks_per_buffer =
        std::max<std::size_t>(1, static_cast<std::size_t>(config.shuffle_users / config.read_users));
    if (!train) {
      // The metrics do not depend on the order: users of similar length share
      // a batch (a batch is as wide as its longest history), sorted within
      // buffers of shuffle_users users so that the chunks held stay bounded.
      std::vector<SampleRef> carried;
      for (std::size_t first = 0; first < order.size(); first += chunks_per_buffer) {
        const std::size_t old_size = carried.size();
        for (std::size_t i = first; i < std::min(order.size(), first + chunks_per_buffer); ++i) {
          for_each_sample(order[i], [&](const SampleRef& s) { carried.push_back(s); });
        }
        std::stable_sort(carried.begin() + static_cast<std::ptrdiff_t>(old_size), carried.end(),
                         [](const SampleRef& x, const SampleRef& y) { return x.end - x.begin < y.end - y.begin; });
        std::size_t i = 0;
        for (; i + b <= carried.size(); i += b) {
          plan.samples.insert(plan.samples.end(), carried.begin() + static_cast<std::ptrdiff_t>(i),
                              carried.begin() + static_cast<std::ptrdiff_t>(i + b));
          plan.batch_begin.push_back(static_cast<std::int64_t>(plan.samples.size()));
        }
        carried.erase(carried.begin(), carried.begin() + static_cast<std::ptrdiff_t>(i));
      }
      if (!carried.empty()) {
        plan.samples.insert(plan.samples.end(), carried.begin(), carried.end());
        plan.batch_begin.push_back(static_cast<std::int64_t>(plan.samples.size()));
      }
    } else {
      Rng rng(derive_seed(config.seed, 0x10ADE5ull, epoch));
      rng.shuffle(std::span(order));
      std::vector<SampleRef> carried, fresh;
      std::vector<std::vector<SampleRef>> batches;
      for (std::size_t first = 0; first < order.size(); first += chunks_per_buffer) {
        fresh.clear();
        const std::size_t last = std::min(order.size(), first + chunks_per_buffer);
        for (std::size_t i = first; i < last; ++i) {
          for_each_sample(order[i], [&](const SampleRef& s) { fresh.push_back(s); });
        }
        rng.shuffle(std::span(fresh));
        if (config.group_by_length) {
          std::stable_sort(fresh.begin(), fresh.end(),
                           [](const SampleRef& x, const SampleRef& y) { return x.end - x.begin < y.end - y.begin; });
        }
        // Samples left over from the previous buffer lead; the rest are cut
        // into full batches whose order is shuffled.
        carried.insert(carried.end(), fresh.begin(), fresh.end());
        batches.clear();
        std::size_t i = 0;
        for (; i + b <= carried.size(); i += b) batches.emplace_back(carried.begin() + i, carried.begin() + i + b);
        carried.erase(carried.begin(), carried.begin() + static_cast<std::ptrdiff_t>(i));
        rng.shuffle(std::span(batches));
        for (const auto& batch : batches) {
          plan.samples.insert(plan.samples.end(), batch.begin(), batch.end());
          plan.batch_begin.push_back(static_cast<std::int64_t>(plan.samples.size()));
        }
      }
      if (!carried.empty() && !config.drop_last) {
        plan.samples.insert(plan.samples.end(), carried.begin(), carried.end());
        plan.batch_begin.push_back(static_cast<std::int64_t>(plan.samples.size()));
      }
    }
    plan.chunk_last_batch.assign(chunks.size(), -1);
    for (std::int64_t k = 0; k < plan.num_batches(); ++k) {
      for (auto s = plan.batch_begin[k]; s < plan.batch_begin[k + 1]; ++s) {
        plan.chunk_last_batch[static_cast<std::size_t>(plan.samples[s].chunk)] = k;
      }
    }
    return plan;
  }

  bool owns(std::int32_t chunk) const { return chunk % world == rank; }

  ChunkData read_chunk(std::int32_t c) {
    const Chunk& chunk = chunks[static_cast<std::size_t>(c)];
    const auto offsets = store.part_offsets(chunk.part);
    ChunkData data;
    const std::int64_t first_event = offsets[chunk.first_user];
    const std::int64_t end_event = offsets[chunk.end_user];
    data.offsets.reserve(static_cast<std::size_t>(chunk.end_user - chunk.first_user + 1));
    for (auto u = chunk.first_user; u <= chunk.end_user; ++u) data.offsets.push_back(offsets[u] - first_event);
    data.items.resize(static_cast<std::size_t>(end_event - first_event));
    data.times.resize(data.items.size());
    store.read_users(chunk.part, chunk.first_user, chunk.end_user, data.items.data(), data.times.data());
    auto& ids = part_user_ids[static_cast<std::size_t>(chunk.part)];
    if (ids.empty()) ids = store.part_user_ids(chunk.part);
    data.user_ids.assign(ids.begin() + chunk.first_user, ids.begin() + chunk.end_user);
    return data;
  }

  Batch build_batch(const EpochPlan& plan, std::int64_t k, std::unordered_map<std::int32_t, ChunkData>& cache) {
    Batch batch;
    batch.training = part == SplitPart::Train;
    batch.epoch = plan.epoch;
    batch.global_index = k;
    batch.global_rows = static_cast<int>(plan.batch_begin[k + 1] - plan.batch_begin[k]);
    std::vector<const SampleRef*> rows;
    for (auto s = plan.batch_begin[k]; s < plan.batch_begin[k + 1]; ++s) {
      const SampleRef& ref = plan.samples[s];
      if (!owns(ref.chunk)) continue;
      rows.push_back(&ref);
      if (!cache.contains(ref.chunk)) cache.emplace(ref.chunk, read_chunk(ref.chunk));
      batch.width = std::max(batch.width, static_cast<int>(ref.end - ref.begin - 1));
    }
    const auto B = rows.size();
    const auto L = static_cast<std::size_t>(batch.width);
    batch.rows = static_cast<int>(B);
    batch.items.assign(B * L, 0);
    batch.times.assign(B * L, 0);
    batch.lengths.resize(B);
    batch.user_ids.resize(B);
    batch.window_starts.resize(B);
    batch.targets.assign(batch.training ? B * L : B, 0);
    batch.target_times.assign(batch.targets.size(), 0);
    if (!batch.training) batch.seen_offsets.push_back(0);
    for (std::size_t r = 0; r < B; ++r) {
      const SampleRef& ref = *rows[r];
      const ChunkData& data = cache.at(ref.chunk);
      const std::int64_t base = data.offsets[static_cast<std::size_t>(ref.user)];
      const std::size_t length = static_cast<std::size_t>(ref.end - ref.begin - 1);
      const auto* items = data.items.data() + base + ref.begin;
      const auto* times = data.times.data() + base + ref.begin;
      std::copy_n(items, length, batch.items.data() + r * L);
      std::copy_n(times, length, batch.times.data() + r * L);
      batch.lengths[r] = static_cast<std::int32_t>(length);
      batch.user_ids[r] = data.user_ids[static_cast<std::size_t>(ref.user)];
      batch.window_starts[r] = ref.begin;
      if (batch.training) {
        std::copy_n(items + 1, length, batch.targets.data() + r * L);
        std::copy_n(times + 1, length, batch.target_times.data() + r * L);
      } else {
        batch.targets[r] = items[length];
        batch.target_times[r] = times[length];
        const auto* history = data.items.data() + base;
        batch.seen_items.insert(batch.seen_items.end(), history, history + ref.end - 1);
        batch.seen_offsets.push_back(static_cast<std::int64_t>(batch.seen_items.size()));
      }
    }
    return batch;
  }

  template <typename T>
  bool push(T&& item) {
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return stop || queue.size() < static_cast<std::size_t>(config.prefetch_batches); });
    if (stop) return false;
    queue.emplace_back(std::forward<T>(item));
    changed.notify_all();
    return true;
  }

  void produce(LoaderPosition from) {
    try {
      const EpochPlan plan = build_plan(from.epoch);
      std::unordered_map<std::int32_t, ChunkData> cache;
      for (std::int64_t k = from.batch; k < plan.num_batches(); ++k) {
        auto batch = build_batch(plan, k, cache);
        if (preparer) preparer(batch);
        if (!push(std::move(batch))) return;
        std::erase_if(cache, [&](const auto& entry) {
          return plan.chunk_last_batch[static_cast<std::size_t>(entry.first)] <= k;
        });
      }
      push(EndOfEpoch{});
    } catch (...) {
      push(std::current_exception());
    }
  }

  void start_worker() {
    stop = false;
    queue.clear();
    worker = std::thread([this, from = next_position] { produce(from); });
    running = true;
  }

  void stop_worker() {
    {
      std::lock_guard lock(mutex);
      stop = true;
      changed.notify_all();
    }
    if (worker.joinable()) worker.join();
    queue.clear();
    running = false;
  }

  const Batch* peek() {
    if (!running) start_worker();
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return !queue.empty(); });
    // The consumer alone pops, and pushes at the back leave the front in place.
    return std::get_if<Batch>(&queue.front());
  }

  std::optional<Batch> next() {
    if (!running) start_worker();
    std::variant<Batch, EndOfEpoch, std::exception_ptr> item;
    {
      std::unique_lock lock(mutex);
      changed.wait(lock, [&] { return !queue.empty(); });
      item = std::move(queue.front());
      queue.pop_front();
      changed.notify_all();
    }
    if (auto* error = std::get_if<std::exception_ptr>(&item)) {
      stop_worker();
      std::rethrow_exception(*error);
    }
    if (std::holds_alternative<EndOfEpoch>(item)) {
      stop_worker();
      next_position = {next_position.epoch + 1, 0};
      return std::nullopt;
    }
    ++next_position.batch;
    return std::move(std::get<Batch>(item));
  }
};

HistoryLoader::HistoryLoader(const std::filesystem::path& dataset, LoaderConfig config, SplitPart part, int rank,
                             int world)
    : impl_(std::make_unique<Impl>(dataset, std::move(config), part, rank, world)) {}
HistoryLoader::~HistoryLoader() = default;

std::optional<Batch> HistoryLoader::next() { return impl_->next(); }
const Batch* HistoryLoader::peek() { return impl_->peek(); }
LoaderPosition HistoryLoader::position() const { return impl_->next_position; }
void HistoryLoader::restore(const LoaderPosition& position) {
  impl_->stop_worker();
  impl_->next_position = position;
}
std::int64_t HistoryLoader::batches_per_epoch() const { return impl_->batches_per_epoch(); }
std::int64_t HistoryLoader::samples_per_epoch() const { return impl_->total_samples; }
std::int64_t HistoryLoader::rank_users() const { return impl_->owned_users; }
std::int64_t HistoryLoader::users_without_target() const {
  // An evaluation part has one sample per user with a target.
  return impl_->part == SplitPart::Train ? 0 : impl_->total_users - impl_->total_samples;
}
std::int64_t HistoryLoader::num_items() const { return impl_->store.meta().num_items; }
void HistoryLoader::set_batch_preparer(std::function<void(Batch&)> preparer) {
  impl_->stop_worker();  // batches already built ahead have not seen it
  impl_->preparer = std::move(preparer);
}

}  // namespace longrec::data
