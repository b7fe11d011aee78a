// The byte layout of a serialised UserState, read and written without
// LibTorch (so that the reader is fuzzed and sanitized on its own).
//
//   magic "LRUSTATE" | u32 version | string signature | u8 float64 |
//   i64 events_seen | i64 dropped_events | i32 dropped_groups | i32 groups_done |
//   i64 next_position | vec raw_items | vec raw_times | vec token_positions |
//   vec token_times | u32 layers | per layer: keys, values as 4 x i64 shape +
//   the elements | u32 CRC-32 of everything before it
//
// (string / vec: u64 count then the bytes / int64 elements; little-endian as
// written by the host.)
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace longrec::model {

struct UserStateRecord {
  // One cached key or value tensor [1, H, M, d] of one layer: its shape and
  // where its elements sit in the bytes read (valid while those bytes live).
  struct CachedTensor {
    std::array<std::int64_t, 4> shape{};
    const char* data = nullptr;
    std::size_t bytes = 0;
  };

  std::string signature;  // the architecture the state was computed with
  bool float64 = false;   // element type of the cached tensors (else float32)
  std::int64_t events_seen = 0, dropped_events = 0;
  std::int32_t dropped_groups = 0, groups_done = 0;
  std::int64_t next_position = 0;
  std::vector<std::int64_t> raw_items, raw_times, token_positions, token_times;
  std::vector<CachedTensor> keys, values;  // one per layer (both empty, or both `layers` long)

  std::size_t element_bytes() const { return float64 ? 8 : 4; }
};

// Reads and checks the layout: magic, version, checksum, every length against
// the bytes left, shapes non-negative with [1, H, M, d] and M = the cached
// tokens, counts and scalars consistent (no negative count, one time per
// event and per token). DataError naming what is wrong; never reads past
// `bytes` and allocates no more than `bytes` holds.
UserStateRecord read_user_state_record(const std::string& bytes);

// The bytes of `record` (the tensors' `data` / `bytes` as given), checksum
// appended.
std::string write_user_state_record(const UserStateRecord& record);

}  // namespace longrec::model
