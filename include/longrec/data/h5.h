// Thin RAII layer over the HDF5 C API, used by the history store and checkpoints.
//
// Every HDF5 call goes through h5::check, which turns a failure into a
// DataError naming the file, the object and HDF5's own error text (a
// SystemError with the OS's message, e.g. "No space left on device", when the
// cause is a failed system call). HDF5 calls are serialised by one
// process-wide mutex because Debian's serial HDF5 is not built thread-safe and
// loaders read from background threads.
//
// Closing: objects close before their file (members are declared file first),
// and writers close explicitly, in that order, with every close checked
// (AppendableDataset::close, File::close); destructors close too but never
// throw. When a close fails (a full disk makes the final flush fail), HDF5
// 1.10 frees the file but keeps its id (HDFFV-11052), and its own shutdown at
// exit would then crash on it; longrec therefore replaces HDF5's atexit
// shutdown with one that skips H5close after a failed close.
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
// A failed system call (a write on a full disk) reads "file write failed: No
// space left on device" instead of HDF5's whole description. Clears the stack.
std::string last_error_text();

// Throws "<context>: <hdf5 message>" from the current error stack: a
// SystemError when a system call failed (errno set), else a DataError.
[[noreturn]] void throw_last_error(const std::string& context);

// Throws (throw_last_error) when `status` < 0.
template <typename T>
T check(T status, const std::string& context) {
  if (status < 0) throw_last_error(context);
  return status;
}

// True once any HDF5 close has failed in this process (HDF5's shutdown is then skipped at exit).
bool close_failed();

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
  // Closes and forgets the id; a failure is recorded (close_failed) but not thrown.
  void reset();
  // Closes and forgets the id; throws (check) naming `context` when the close fails.
  void close(const std::string& context);
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
  // Whether its chunks carry a Fletcher-32 checksum (verified by HDF5 on every read).
  bool has_checksum() const;
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
  // Creates a new file (never replaces one). checksums: every chunked
  // dataset created in it gets a Fletcher-32 checksum per chunk.
  static File create(const std::filesystem::path& path, bool checksums = false);

  const std::filesystem::path& path() const { return path_; }
  hid_t id() const { return handle_.get(); }
  bool checksums() const { return checksums_; }
  void flush();
  // A file being written: flushes, then closes, both checked; every object
  // opened in it (an AppendableDataset) must be closed first. A file being
  // read: closes, checked. Throws naming the file.
  void close();

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
  bool writable_ = false, checksums_ = false;
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
  // Closes the dataset (writing its cached chunks), checked; before the file's close.
  void close();

 private:
  File* file_ = nullptr;
  std::string name_;
  Handle dataset_;
  hsize_t size_ = 0;
};

}  // namespace longrec::h5
