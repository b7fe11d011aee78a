#include "longrec/data/h5.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

namespace longrec::h5 {

std::recursive_mutex& library_mutex() {
  static std::recursive_mutex mutex;
  return mutex;
}

namespace {

// HDF5 prints its error stack to stderr by default; longrec reports errors itself.
void silence_library() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

std::atomic<bool> g_close_failed{false};

// HDF5's own atexit shutdown closes every id still open; after a failed file
// close (HDFFV-11052, fixed in HDF5 1.14.1) one of them points at freed memory
// and the shutdown crashes, so the process that reported a full disk would end
// with SIGSEGV instead of its exit code. Ours skips H5close in that case (the
// process is ending; the OS closes the files).
void shutdown_library() {
  if (!g_close_failed.load()) H5close();
}

// Runs during static initialisation, before any HDF5 call can initialise the library.
[[maybe_unused]] const bool kShutdownInstalled = [] {
  H5dont_atexit();
  std::atexit(shutdown_library);
  return true;
}();

// What the error stack says: the innermost message, and the OS error of a
// failed system call when one is described ("errno = 28, error message = '...'").
struct ErrorStack {
  std::string innermost;
  int os_errno = 0;
  std::string os_call;  // the failing step, e.g. "file write failed"
  std::string os_message;
};

herr_t collect_error(unsigned n, const H5E_error2_t* error, void* data) {
  auto* stack = static_cast<ErrorStack*>(data);
  if (error->desc == nullptr) return 0;
  const std::string_view desc = error->desc;
  if (n == 0) stack->innermost = desc;  // innermost: the actual cause
  const auto errno_at = desc.find("errno = ");
  if (stack->os_errno == 0 && errno_at != std::string_view::npos) {
    stack->os_errno = std::atoi(std::string(desc.substr(errno_at + 8, 12)).c_str());
    stack->os_call = std::string(desc.substr(0, desc.find(':')));
    constexpr std::string_view kMessage = "error message = '";
    const auto message_at = desc.find(kMessage);
    if (message_at != std::string_view::npos) {
      const auto begin = message_at + kMessage.size();
      stack->os_message = std::string(desc.substr(begin, desc.find('\'', begin) - begin));
    }
  }
  return 0;
}

ErrorStack take_error_stack() {
  ErrorStack stack;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_error, &stack);
  H5Eclear2(H5E_DEFAULT);
  return stack;
}

std::string describe(const ErrorStack& stack) {
  if (stack.os_errno != 0) {
    return fmt::format("{}: {}", stack.os_call,
                       stack.os_message.empty() ? std::strerror(stack.os_errno) : stack.os_message);
  }
  return stack.innermost.empty() ? "HDF5 call failed" : stack.innermost;
}

constexpr hsize_t kChunkCacheBytes = 8u << 20;

}  // namespace

std::string last_error_text() { return describe(take_error_stack()); }

void throw_last_error(const std::string& context) {
  const ErrorStack stack = take_error_stack();
  const std::string message = fmt::format("{}: {}", context, describe(stack));
  if (stack.os_errno != 0) throw SystemError(message);
  throw DataError(message);
}

bool close_failed() { return g_close_failed.load(); }

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && closer_ != nullptr) {
    std::lock_guard lock(library_mutex());
    if (closer_(id_) < 0) {
      g_close_failed = true;
      H5Eclear2(H5E_DEFAULT);
    }
  }
  id_ = H5I_INVALID_HID;
}

void Handle::close(const std::string& context) {
  const hid_t id = std::exchange(id_, H5I_INVALID_HID);
  if (id < 0 || closer_ == nullptr) return;
  std::lock_guard lock(library_mutex());
  if (closer_(id) < 0) {
    g_close_failed = true;
    throw_last_error(context);
  }
}

template <>
hid_t native_type<std::int32_t>() {
  return H5T_NATIVE_INT32;
}
template <>
hid_t native_type<std::int64_t>() {
  return H5T_NATIVE_INT64;
}
template <>
hid_t native_type<float>() {
  return H5T_NATIVE_FLOAT;
}
template <>
hid_t native_type<double>() {
  return H5T_NATIVE_DOUBLE;
}
template <>
hid_t native_type<std::uint8_t>() {
  return H5T_NATIVE_UINT8;
}
template <>
hid_t native_type<std::uint16_t>() {
  return H5T_NATIVE_UINT16;
}

File File::open(const std::filesystem::path& path, const std::string& hint) {
  std::lock_guard lock(library_mutex());
  silence_library();
  File file;
  file.path_ = path;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw DataError(fmt::format("{}: file not found; {}", path.string(), hint));
#if H5_VERSION_GE(1, 12, 0)
  const htri_t is_hdf5 = H5Fis_accessible(path.c_str(), H5P_DEFAULT);
#else
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
#endif
  if (is_hdf5 <= 0) {
    H5Eclear2(H5E_DEFAULT);
    throw DataError(
        fmt::format("{}: not a readable HDF5 file (truncated, corrupt or another format); {}", path.string(), hint));
  }
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) {
    throw DataError(fmt::format("{}: cannot open as HDF5 ({}); {}", path.string(), last_error_text(), hint));
  }
  file.handle_ = Handle(id, H5Fclose);
  return file;
}

File File::create(const std::filesystem::path& path, bool checksums) {
  std::lock_guard lock(library_mutex());
  silence_library();
  File file;
  file.path_ = path;
  file.writable_ = true;
  file.checksums_ = checksums;
  file.handle_ = Handle(check(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT),
                              fmt::format("{}: cannot create HDF5 file", path.string())),
                        H5Fclose);
  return file;
}

void File::flush() {
  std::lock_guard lock(library_mutex());
  check(H5Fflush(id(), H5F_SCOPE_LOCAL), where("/") + " flush");
}

void File::close() {
  if (!handle_) return;
  std::lock_guard lock(library_mutex());
  if (writable_) {
    // With objects still open, H5Fclose would only mark the file and the real
    // close (the last writes) would happen, unchecked, when they close.
    const ssize_t open = H5Fget_obj_count(id(), H5F_OBJ_ALL | H5F_OBJ_LOCAL);
    LONGREC_CHECK(open == 1, "{}: {} objects still open at close; close them before the file", path_.string(),
                  open - 1);
    flush();
  }
  handle_.close(where("/") + " close");
}

bool File::has(const std::string& object) const {
  std::lock_guard lock(library_mutex());
  // Walk the path one link at a time: H5Lexists fails on a missing parent.
  std::string prefix;
  std::size_t start = 1;
  while (start <= object.size()) {
    const auto slash = object.find('/', start);
    prefix = object.substr(0, slash);
    const htri_t exists = H5Lexists(id(), prefix.c_str(), H5P_DEFAULT);
    if (exists <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

void File::create_group(const std::string& name) {
  std::lock_guard lock(library_mutex());
  Handle group(
      check(H5Gcreate2(id(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), where(name) + " create group"),
      H5Gclose);
  group.close(where(name) + " create group");
}

void File::write_attr(const std::string& name, const std::string& value) {
  std::lock_guard lock(library_mutex());
  const std::string context = where("/") + " attribute '" + name + "'";
  Handle type(check(H5Tcopy(H5T_C_S1), context), H5Tclose);
  check(H5Tset_size(type.get(), std::max<std::size_t>(value.size(), 1)), context);
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), context);
  Handle space(check(H5Screate(H5S_SCALAR), context), H5Sclose);
  Handle attr(check(H5Acreate2(id(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), context),
              H5Aclose);
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  check(H5Awrite(attr.get(), type.get(), padded.data()), context);
  attr.close(context);
}

void File::write_attr(const std::string& name, std::int64_t value) {
  std::lock_guard lock(library_mutex());
  const std::string context = where("/") + " attribute '" + name + "'";
  Handle space(check(H5Screate(H5S_SCALAR), context), H5Sclose);
  Handle attr(check(H5Acreate2(id(), name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), context),
              H5Aclose);
  check(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), context);
  attr.close(context);
}

bool File::has_attr(const std::string& name) const {
  std::lock_guard lock(library_mutex());
  const htri_t exists = H5Aexists(id(), name.c_str());
  if (exists < 0) H5Eclear2(H5E_DEFAULT);
  return exists > 0;
}

std::string File::read_attr_string(const std::string& name) const {
  std::lock_guard lock(library_mutex());
  const std::string context = where("/") + " attribute '" + name + "'";
  if (!has_attr(name)) throw DataError(context + ": missing");
  Handle attr(check(H5Aopen(id(), name.c_str(), H5P_DEFAULT), context), H5Aclose);
  Handle type(check(H5Aget_type(attr.get()), context), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING) throw DataError(context + ": expected a string attribute");
  if (H5Tis_variable_str(type.get()) > 0) {
    char* text = nullptr;
    check(H5Aread(attr.get(), type.get(), &text), context);
    std::string value = text != nullptr ? text : "";
    H5free_memory(text);
    return value;
  }
  const std::size_t size = H5Tget_size(type.get());
  std::string value(size, '\0');
  check(H5Aread(attr.get(), type.get(), value.data()), context);
  value.erase(std::find(value.begin(), value.end(), '\0'), value.end());
  return value;
}

std::int64_t File::read_attr_int(const std::string& name) const {
  std::lock_guard lock(library_mutex());
  const std::string context = where("/") + " attribute '" + name + "'";
  if (!has_attr(name)) throw DataError(context + ": missing");
  Handle attr(check(H5Aopen(id(), name.c_str(), H5P_DEFAULT), context), H5Aclose);
  Handle type(check(H5Aget_type(attr.get()), context), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_INTEGER) throw DataError(context + ": expected an integer attribute");
  std::int64_t value = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_INT64, &value), context);
  return value;
}

namespace {

Handle chunked_properties(hsize_t chunk, bool checksum, const std::string& context) {
  Handle props(check(H5Pcreate(H5P_DATASET_CREATE), context), H5Pclose);
  check(H5Pset_chunk(props.get(), 1, &chunk), context);
  check(H5Pset_shuffle(props.get()), context);
  check(H5Pset_deflate(props.get(), 1), context);
  if (checksum) check(H5Pset_fletcher32(props.get()), context);  // last: over the compressed bytes
  return props;
}

Handle dataset_access(const std::string& context) {
  Handle access(check(H5Pcreate(H5P_DATASET_ACCESS), context), H5Pclose);
  check(H5Pset_chunk_cache(access.get(), 1031, kChunkCacheBytes, 1.0), context);
  return access;
}

}  // namespace

template <typename T>
void File::write(const std::string& name, std::span<const T> values, hsize_t chunk) {
  std::lock_guard lock(library_mutex());
  const std::string context = where(name) + " write";
  const hsize_t size = values.size();
  Handle space(check(H5Screate_simple(1, &size, nullptr), context), H5Sclose);
  chunk = std::max<hsize_t>(1, std::min<hsize_t>(chunk, size));
  Handle props = chunked_properties(chunk, checksums_, context);
  Handle dataset(
      check(H5Dcreate2(id(), name.c_str(), native_type<T>(), space.get(), H5P_DEFAULT, props.get(), H5P_DEFAULT),
            context),
      H5Dclose);
  if (size > 0) {
    check(H5Dwrite(dataset.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), context);
  }
  dataset.close(context);
}

void File::write_strings(const std::string& name, const std::vector<std::string>& values) {
  std::lock_guard lock(library_mutex());
  const std::string context = where(name) + " write";
  Handle type(check(H5Tcopy(H5T_C_S1), context), H5Tclose);
  check(H5Tset_size(type.get(), H5T_VARIABLE), context);
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), context);
  const hsize_t size = values.size();
  Handle space(check(H5Screate_simple(1, &size, nullptr), context), H5Sclose);
  // Fletcher-32 refuses variable-length types: strings get none.
  Handle props = chunked_properties(std::max<hsize_t>(1, std::min<hsize_t>(4096, size)), false, context);
  Handle dataset(
      check(H5Dcreate2(id(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, props.get(), H5P_DEFAULT), context),
      H5Dclose);
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const auto& v : values) pointers.push_back(v.c_str());
  if (size > 0) check(H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()), context);
  dataset.close(context);
}

Handle File::open_dataset(const std::string& name) const {
  if (!has(name)) throw DataError(fmt::format("{}: dataset missing", where(name)));
  Handle access = dataset_access(where(name));
  return Handle(check(H5Dopen2(id(), name.c_str(), access.get()), where(name) + " open"), H5Dclose);
}

hsize_t File::length(const std::string& name) const {
  std::lock_guard lock(library_mutex());
  Handle dataset = open_dataset(name);
  Handle space(check(H5Dget_space(dataset.get()), where(name)), H5Sclose);
  if (H5Sget_simple_extent_ndims(space.get()) != 1) throw DataError(where(name) + ": expected a 1-D dataset");
  hsize_t size = 0;
  check(H5Sget_simple_extent_dims(space.get(), &size, nullptr), where(name));
  return size;
}

template <typename T>
std::vector<T> File::read(const std::string& name) const {
  std::lock_guard lock(library_mutex());
  std::vector<T> values(length(name));
  if (!values.empty()) read_range<T>(name, 0, values.size(), values.data());
  return values;
}

template <typename T>
void File::read_range(const std::string& name, hsize_t begin, hsize_t count, T* out) const {
  dataset(name).read_range(begin, count, out);
}

Dataset File::dataset(const std::string& name) const {
  std::lock_guard lock(library_mutex());
  return Dataset(open_dataset(name), where(name), length(name));
}

template <typename T>
void Dataset::read_range(hsize_t begin, hsize_t count, T* out) const {
  std::lock_guard lock(library_mutex());
  const std::string context = where_ + fmt::format(" read [{}, {})", begin, begin + count);
  if (begin + count > size_) throw DataError(fmt::format("{}: dataset has only {} elements", context, size_));
  if (count == 0) return;
  Handle file_space(check(H5Dget_space(handle_.get()), context), H5Sclose);
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &begin, nullptr, &count, nullptr), context);
  Handle memory_space(check(H5Screate_simple(1, &count, nullptr), context), H5Sclose);
  check(H5Dread(handle_.get(), native_type<T>(), memory_space.get(), file_space.get(), H5P_DEFAULT, out), context);
}

bool Dataset::has_checksum() const {
  std::lock_guard lock(library_mutex());
  Handle plist(check(H5Dget_create_plist(handle_.get()), where_), H5Pclose);
  unsigned flags = 0, config = 0;
  std::size_t values = 0;
  const herr_t found =
      H5Pget_filter_by_id2(plist.get(), H5Z_FILTER_FLETCHER32, &flags, &values, nullptr, 0, nullptr, &config);
  if (found < 0) H5Eclear2(H5E_DEFAULT);
  return found >= 0;
}

std::vector<std::string> File::read_strings(const std::string& name) const {
  std::lock_guard lock(library_mutex());
  const std::string context = where(name) + " read";
  Handle dataset = open_dataset(name);
  Handle type(check(H5Dget_type(dataset.get()), context), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) <= 0) {
    throw DataError(context + ": expected variable-length strings");
  }
  const hsize_t size = length(name);
  std::vector<char*> pointers(size, nullptr);
  if (size > 0) check(H5Dread(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()), context);
  std::vector<std::string> values;
  values.reserve(size);
  for (char* p : pointers) {
    values.emplace_back(p != nullptr ? p : "");
    H5free_memory(p);
  }
  return values;
}

template <typename T>
AppendableDataset<T>::AppendableDataset(File& file, const std::string& name, hsize_t chunk)
    : file_(&file), name_(name) {
  std::lock_guard lock(library_mutex());
  const std::string context = file.where(name) + " create";
  const hsize_t initial = 0, unlimited = H5S_UNLIMITED;
  Handle space(check(H5Screate_simple(1, &initial, &unlimited), context), H5Sclose);
  Handle props = chunked_properties(chunk, file.checksums(), context);
  Handle access = dataset_access(context);
  dataset_ = Handle(
      check(H5Dcreate2(file.id(), name.c_str(), native_type<T>(), space.get(), H5P_DEFAULT, props.get(), access.get()),
            context),
      H5Dclose);
}

template <typename T>
void AppendableDataset<T>::append(std::span<const T> values) {
  if (values.empty()) return;
  std::lock_guard lock(library_mutex());
  const std::string context = file_->where(name_) + " append";
  const hsize_t begin = size_, count = values.size(), new_size = size_ + values.size();
  check(H5Dset_extent(dataset_.get(), &new_size), context);
  Handle file_space(check(H5Dget_space(dataset_.get()), context), H5Sclose);
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &begin, nullptr, &count, nullptr), context);
  Handle memory_space(check(H5Screate_simple(1, &count, nullptr), context), H5Sclose);
  check(H5Dwrite(dataset_.get(), native_type<T>(), memory_space.get(), file_space.get(), H5P_DEFAULT, values.data()),
        context);
  size_ = new_size;
}

template <typename T>
void AppendableDataset<T>::close() {
  if (file_ != nullptr) dataset_.close(file_->where(name_) + " close");
}

#define LONGREC_H5_INSTANTIATE(T)                                                    \
  template void File::write<T>(const std::string&, std::span<const T>, hsize_t);     \
  template std::vector<T> File::read<T>(const std::string&) const;                   \
  template void File::read_range<T>(const std::string&, hsize_t, hsize_t, T*) const; \
  template void Dataset::read_range<T>(hsize_t, hsize_t, T*) const;                  \
  template class AppendableDataset<T>;
LONGREC_H5_INSTANTIATE(std::int32_t)
LONGREC_H5_INSTANTIATE(std::int64_t)
LONGREC_H5_INSTANTIATE(float)
LONGREC_H5_INSTANTIATE(double)
LONGREC_H5_INSTANTIATE(std::uint8_t)
LONGREC_H5_INSTANTIATE(std::uint16_t)
#undef LONGREC_H5_INSTANTIATE

}  // namespace longrec::h5
