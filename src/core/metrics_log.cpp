#include "longrec/core/metrics_log.h"

#include <nlohmann/json.hpp>

#include <chrono>

#include <fmt/format.h>

#include "longrec/core/error.h"

namespace longrec {

MetricsLog::MetricsLog(const std::filesystem::path& path) : out_(path, std::ios::app) {
  if (!out_) throw SystemError(fmt::format("{}: cannot open for appending", path.string()));
}

void MetricsLog::write(const std::string& kind, const std::map<std::string, double>& fields) {
  nlohmann::json line;
  line["kind"] = kind;
  line["time"] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (const auto& [key, value] : fields) line[key] = value;
  out_ << line.dump() << '\n';
  out_.flush();
}

}  // namespace longrec
