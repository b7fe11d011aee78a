// Thin RAII layer over the HDF5 C API, used by the history store and checkpoints.
//
// Every HDF5 call goes through h5::check, which turns a failure into a
// DataError naming the file, the object and HDF5's own error text. HDF5 calls
// are serialised by one process-wide mutex because Debian's serial HDF5 is not
// built thread-safe and loaders read from background threads.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "longrec/core/error.h"

namespace longrec::h5 {

std::recursive_mutex& library_mutex();

// The innermost HDF5 error message of the current thread's error stack.
std::string last_error_text();

// Throws DataError("<context>: <hdf5 message>") when `status` < 0.
template <typename T>
T check(T status, const std::string& context) {
  if (status < 0) throw DataError(fmt::format("{}: {}", context, last_error_text()));
  return status;
}

// Owns an hid_t and closes it with the matching H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept { *this = std::move(other); }
  Handle& operator=(Handle&& other) noexcept;
  ~Handle() { reset(); }
  void reset();
  hid_t get() const { return id_; }
  explicit operator bool() const { return id_ >= 0; }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

template <typename T>
hid_t native_type();

// An open 1-D dataset; keeping it open keeps its chunk cache warm across
// consecutive range reads.
class Dataset {
 public:
  Dataset(Handle handle, std::string where, hsize_t size)
      : handle_(std::move(handle)), where_(std::move(where)), size_(size) {}
  hsize_t size() const { return size_; }
  const std::string& where() const { return where_; }
  // Reads [begin, begin + count) into out; throws DataError naming the range.
  template <typename T>
  void read_range(hsize_t begin, hsize_t count, T* out) const;

 private:
  Handle handle_;
  std::string where_;
  hsize_t size_;
};

class File {
 public:
  // Opens read-only. A missing, truncated or non-HDF5 file throws DataError
  // naming the path and the hint.
  static File open(const std::filesystem::path& path, const std::string& hint);
  static File create(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  hid_t id() const { return handle_.get(); }
  void flush();
  void close() { handle_.reset(); }

  bool has(const std::string& object) const;
  void create_group(const std::string& name);

  // Attributes on the root group.
  void write_attr(const std::string& name, const std::string& value);
  void write_attr(const std::string& name, std::int64_t value);
  bool has_attr(const std::string& name) const;
  std::string read_attr_string(const std::string& name) const;
  std::int64_t read_attr_int(const std::string& name) const;

  // Whole 1-D datasets, chunked and deflate-compressed.
  template <typename T>
  void write(const std::string& name, std::span<const T> values, hsize_t chunk = 1 << 16);
  void write_strings(const std::string& name, const std::vector<std::string>& values);

  // Length of a 1-D dataset; throws naming the dataset when absent or not 1-D.
  hsize_t length(const std::string& name) const;
  template <typename T>
  std::vector<T> read(const std::string& name) const;
  // Reads [begin, begin + count) of a 1-D dataset into out.
  template <typename T>
  void read_range(const std::string& name, hsize_t begin, hsize_t count, T* out) const;
  std::vector<std::string> read_strings(const std::string& name) const;
  Dataset dataset(const std::string& name) const;

  std::string where(const std::string& object) const { return path_.string() + ":" + object; }

 private:
  Handle open_dataset(const std::string& name) const;
  std::filesystem::path path_;
  Handle handle_;
};

// A 1-D chunked, compressed dataset that grows by appending; used to stream
// 10^8+ events into a store without holding them in memory.
template <typename T>
class AppendableDataset {
 public:
  AppendableDataset() = default;
  AppendableDataset(File& file, const std::string& name, hsize_t chunk);
  void append(std::span<const T> values);
  hsize_t size() const { return size_; }

 private:
  File* file_ = nullptr;
  std::string name_;
  Handle dataset_;
  hsize_t size_ = 0;
};

}  // namespace longrec::h5
