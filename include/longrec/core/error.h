// Error types and check macros shared by every module.
//
// Library code throws a typed exception; the CLI decides how to report it.
// Every message names what the user can act on: the file and line, the
// config key, the HDF5 dataset, and what was expected instead.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace longrec {

// Base of all longrec errors.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A configuration key with a missing, ill-typed or invalid value.
class ConfigError : public Error {
 public:
  ConfigError(const std::string& key, const std::string& problem)
      : Error(fmt::format("config key '{}': {}", key, problem)), key_(key) {}
  const std::string& key() const { return key_; }

 private:
  std::string key_;
};

// Bad input data: a malformed raw line, a corrupt or foreign store file.
class DataError : public Error {
 public:
  using Error::Error;
};

// A failed call into a system library (MPI, NCCL, CUDA, HDF5, the OS).
class SystemError : public Error {
 public:
  using Error::Error;
};

// Internal invariant violated: a bug in longrec, not bad input.
[[noreturn]] void fail_internal(const char* file, int line, const std::string& message);

// Inside a catch block: rethrows the exception in flight with "; <note>"
// appended to its message, keeping its kind (DataError, SystemError; a
// std::filesystem error becomes a SystemError). Anything else is rethrown
// unchanged. Writers use it to say what was (not) left behind.
[[noreturn]] void rethrow_with_note(const std::string& note);

}  // namespace longrec

// LONGREC_CHECK(cond, "fmt", args...): throws longrec::Error naming the source
// location when an internal invariant does not hold.
#define LONGREC_CHECK(cond, ...)                                                         \
  do {                                                                                   \
    if (!(cond)) ::longrec::fail_internal(__FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
  } while (0)
