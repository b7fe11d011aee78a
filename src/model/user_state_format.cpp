#include "longrec/model/user_state_format.h"

#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "longrec/core/checksum.h"
#include "longrec/core/error.h"

namespace longrec::model {

namespace {

constexpr char kMagic[8] = {'L', 'R', 'U', 'S', 'T', 'A', 'T', 'E'};
constexpr std::uint32_t kFormatVersion = 1;
// No real model has more layers or a longer signature; larger values are damage.
constexpr std::uint32_t kMaxLayers = 4096;
constexpr std::uint64_t kMaxSignatureBytes = 1 << 16;

class Writer {
 public:
  template <typename T>
  void put(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    bytes_.append(reinterpret_cast<const char*>(&value), sizeof(T));
  }
  void put_bytes(const void* data, std::size_t size) {
    if (size > 0) bytes_.append(static_cast<const char*>(data), size);
  }
  void put_string(const std::string& s) {
    put<std::uint64_t>(s.size());
    put_bytes(s.data(), s.size());
  }
  void put_vector(const std::vector<std::int64_t>& v) {
    put<std::uint64_t>(v.size());
    put_bytes(v.data(), v.size() * sizeof(std::int64_t));
  }
  std::string finish() {
    Crc32 crc;
    crc.update(bytes_.data(), bytes_.size());
    put<std::uint32_t>(crc.value());
    return std::move(bytes_);
  }

 private:
  std::string bytes_;
};

// Reads fields front to back from [begin, end) (the checksum excluded).
class Reader {
 public:
  Reader(const char* begin, std::size_t size) : data_(begin), size_(size) {}
  template <typename T>
  T get(const char* what) {
    T value;
    std::memcpy(&value, take(sizeof(T), what), sizeof(T));
    return value;
  }
  const char* take(std::size_t size, const char* what) {
    if (size > size_ - offset_) {
      throw DataError(fmt::format("user state: truncated ({} needs {} bytes, {} left)", what, size, size_ - offset_));
    }
    const char* p = data_ + offset_;
    offset_ += size;
    return p;
  }
  std::string get_string(const char* what, std::uint64_t max_size) {
    const auto size = get<std::uint64_t>(what);
    if (size > max_size) throw DataError(fmt::format("user state: {} of {} bytes (at most {})", what, size, max_size));
    return std::string(take(static_cast<std::size_t>(size), what), static_cast<std::size_t>(size));
  }
  std::vector<std::int64_t> get_vector(const char* what) {
    const auto count = get<std::uint64_t>(what);
    if (count > remaining() / sizeof(std::int64_t)) {
      throw DataError(fmt::format("user state: {} claims {} values, only {} bytes left", what, count, remaining()));
    }
    std::vector<std::int64_t> v(static_cast<std::size_t>(count));
    if (count > 0) std::memcpy(v.data(), take(v.size() * sizeof(std::int64_t), what), v.size() * sizeof(std::int64_t));
    return v;
  }
  std::size_t remaining() const { return size_ - offset_; }

 private:
  const char* data_;
  std::size_t size_;
  std::size_t offset_ = 0;
};

UserStateRecord::CachedTensor read_tensor(Reader& r, const UserStateRecord& record, std::uint32_t layer,
                                          const char* which) {
  UserStateRecord::CachedTensor t;
  std::uint64_t elements = 1;
  for (auto& s : t.shape) {
    s = r.get<std::int64_t>("a cached tensor's shape");
    // Each dimension is bounded and the running product kept within the bytes left: it cannot overflow.
    if (s < 0 || s > std::numeric_limits<std::int32_t>::max()) {
      throw DataError(fmt::format("user state layer {} {}: dimension {} out of range", layer, which, s));
    }
    if (s > 0 && elements > r.remaining() / static_cast<std::uint64_t>(s)) {
      throw DataError(fmt::format("user state layer {} {}: shape {}x{}x{}x{} is larger than the bytes left", layer,
                                  which, t.shape[0], t.shape[1], t.shape[2], t.shape[3]));
    }
    elements *= static_cast<std::uint64_t>(s);
  }
  if (t.shape[0] != 1 || t.shape[2] != static_cast<std::int64_t>(record.token_positions.size())) {
    throw DataError(fmt::format("user state layer {} {}: shape {}x{}x{}x{}, expected 1 x heads x {} cached tokens x d",
                                layer, which, t.shape[0], t.shape[1], t.shape[2], t.shape[3],
                                record.token_positions.size()));
  }
  if (elements > r.remaining() / record.element_bytes()) {
    throw DataError(fmt::format("user state: truncated (layer {} {})", layer, which));
  }
  t.bytes = static_cast<std::size_t>(elements) * record.element_bytes();
  t.data = r.take(t.bytes, "a cached tensor");
  return t;
}

}  // namespace

UserStateRecord read_user_state_record(const std::string& bytes) {
  if (bytes.size() < sizeof(kMagic) + sizeof(std::uint32_t) * 2 ||
      std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    throw DataError("not a longrec user state (bad magic bytes)");
  }
  const auto body = bytes.size() - sizeof(std::uint32_t);
  {
    Crc32 crc;
    crc.update(bytes.data(), body);
    std::uint32_t stored;
    std::memcpy(&stored, bytes.data() + body, sizeof(stored));
    if (stored != crc.value()) throw DataError("user state: checksum mismatch (damaged bytes)");
  }
  Reader r(bytes.data(), body);
  r.take(sizeof(kMagic), "the magic bytes");
  const auto version = r.get<std::uint32_t>("the version");
  if (version != kFormatVersion) {
    throw DataError(fmt::format("user state format version {}, this build reads version {}", version, kFormatVersion));
  }
  UserStateRecord record;
  record.signature = r.get_string("the model signature", kMaxSignatureBytes);
  const auto type = r.get<std::uint8_t>("the element type");
  if (type > 1) throw DataError(fmt::format("user state: element type {} (0 float32 or 1 float64 expected)", type));
  record.float64 = type == 1;
  record.events_seen = r.get<std::int64_t>("events_seen");
  record.dropped_events = r.get<std::int64_t>("dropped_events");
  record.dropped_groups = r.get<std::int32_t>("dropped_groups");
  record.groups_done = r.get<std::int32_t>("groups_done");
  record.next_position = r.get<std::int64_t>("next_position");
  if (record.events_seen < 0 || record.dropped_events < 0 || record.dropped_groups < 0 || record.groups_done < 0 ||
      record.next_position < 0 || record.dropped_events > record.events_seen) {
    throw DataError(fmt::format(
        "user state: inconsistent counters (events_seen {}, dropped_events {}, dropped_groups {}, groups_done {}, "
        "next_position {})",
        record.events_seen, record.dropped_events, record.dropped_groups, record.groups_done, record.next_position));
  }
  record.raw_items = r.get_vector("raw_items");
  record.raw_times = r.get_vector("raw_times");
  record.token_positions = r.get_vector("token_positions");
  record.token_times = r.get_vector("token_times");
  if (record.raw_items.size() != record.raw_times.size() ||
      record.token_positions.size() != record.token_times.size()) {
    throw DataError("user state: inconsistent event or token counts");
  }
  if (static_cast<std::int64_t>(record.raw_items.size()) > record.events_seen) {
    throw DataError(
        fmt::format("user state: {} held events but only {} seen", record.raw_items.size(), record.events_seen));
  }
  const auto layers = r.get<std::uint32_t>("the layer count");
  if (layers > kMaxLayers) throw DataError(fmt::format("user state: {} layers (at most {})", layers, kMaxLayers));
  for (std::uint32_t layer = 0; layer < layers; ++layer) {
    record.keys.push_back(read_tensor(r, record, layer, "keys"));
    record.values.push_back(read_tensor(r, record, layer, "values"));
  }
  if (r.remaining() != 0) throw DataError("user state: trailing bytes after the last layer");
  return record;
}

std::string write_user_state_record(const UserStateRecord& record) {
  Writer w;
  w.put_bytes(kMagic, sizeof(kMagic));
  w.put<std::uint32_t>(kFormatVersion);
  w.put_string(record.signature);
  w.put<std::uint8_t>(record.float64 ? 1 : 0);
  w.put<std::int64_t>(record.events_seen);
  w.put<std::int64_t>(record.dropped_events);
  w.put<std::int32_t>(record.dropped_groups);
  w.put<std::int32_t>(record.groups_done);
  w.put<std::int64_t>(record.next_position);
  w.put_vector(record.raw_items);
  w.put_vector(record.raw_times);
  w.put_vector(record.token_positions);
  w.put_vector(record.token_times);
  w.put<std::uint32_t>(static_cast<std::uint32_t>(record.keys.size()));
  for (std::size_t layer = 0; layer < record.keys.size(); ++layer) {
    for (const auto* t : {&record.keys[layer], &record.values[layer]}) {
      for (auto size : t->shape) w.put<std::int64_t>(size);
      w.put_bytes(t->data, t->bytes);
    }
  }
  return w.finish();
}

}  // namespace longrec::model
