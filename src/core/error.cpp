#include "longrec/core/error.h"

namespace longrec {

void fail_internal(const char* file, int line, const std::string& message) {
  throw Error(fmt::format("internal error at {}:{}: {}", file, line, message));
}

}  // namespace longrec
