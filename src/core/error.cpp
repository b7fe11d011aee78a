#include "longrec/core/error.h"

#include <filesystem>

namespace longrec {

void fail_internal(const char* file, int line, const std::string& message) {
  throw Error(fmt::format("internal error at {}:{}: {}", file, line, message));
}

void rethrow_with_note(const std::string& note) {
  try {
    throw;
  } catch (const SystemError& e) {
    throw SystemError(fmt::format("{}; {}", e.what(), note));
  } catch (const DataError& e) {
    throw DataError(fmt::format("{}; {}", e.what(), note));
  } catch (const std::filesystem::filesystem_error& e) {
    throw SystemError(fmt::format("{}; {}", e.what(), note));
  }
}

}  // namespace longrec
